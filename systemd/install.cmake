# Installation of what the systemd path needs, with paths that agree with the
# binary's: the units get Exec lines naming PREFIX/BINDIR/certloop
# (systemd/*.service say /usr/bin/certloop, the Debian layout, and are
# rewritten at install time, so `cmake --install --prefix P` agrees too),
# into CERTLOOP_SYSTEMD_UNITDIR (default PREFIX/lib/systemd/system:
# /usr/lib/systemd/system for /usr, /usr/local/lib/systemd/system for the
# default prefix; systemd reads both). The configuration reference and the
# web server, socket and polkit examples go to the documentation directory:
# nothing is written under /etc, and no user, state or runtime directory is
# created (the unit's StateDirectory= and RuntimeDirectory= do that).
include(GNUInstallDirs)
set(CERTLOOP_SYSTEMD_UNITDIR "lib/systemd/system"
    CACHE STRING "where the systemd units are installed (relative: under the prefix)")
set(CERTLOOP_EXAMPLES_DIR "${CMAKE_INSTALL_DATADIR}/doc/certloop/examples")

file(GLOB SYSTEMD_UNITS CONFIGURE_DEPENDS
     ${PROJECT_SOURCE_DIR}/systemd/*.service ${PROJECT_SOURCE_DIR}/systemd/*.socket
     ${PROJECT_SOURCE_DIR}/systemd/*.path)
install(CODE "
  set(bindir \"${CMAKE_INSTALL_BINDIR}\")
  if(NOT IS_ABSOLUTE \"\${bindir}\")
    set(bindir \"\${CMAKE_INSTALL_PREFIX}/\${bindir}\")
  endif()
  set(unitdir \"${CERTLOOP_SYSTEMD_UNITDIR}\")
  if(NOT IS_ABSOLUTE \"\${unitdir}\")
    set(unitdir \"\${CMAKE_INSTALL_PREFIX}/\${unitdir}\")
  endif()
  foreach(unit ${SYSTEMD_UNITS})
    get_filename_component(name \"\${unit}\" NAME)
    file(READ \"\${unit}\" text)
    string(REPLACE \"/usr/bin/certloop\" \"\${bindir}/certloop\" text \"\${text}\")
    file(WRITE \"${PROJECT_BINARY_DIR}/systemd-units/\${name}\" \"\${text}\")
    file(INSTALL \"${PROJECT_BINARY_DIR}/systemd-units/\${name}\" DESTINATION \"\${unitdir}\"
         PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  endforeach()
")
install(FILES ${PROJECT_SOURCE_DIR}/systemd/certloop-socket.conf
              ${PROJECT_SOURCE_DIR}/etc/certloop.toml
        DESTINATION ${CERTLOOP_EXAMPLES_DIR})
file(GLOB ETC_EXAMPLES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/etc/examples/*)
install(FILES ${ETC_EXAMPLES} DESTINATION ${CERTLOOP_EXAMPLES_DIR})
