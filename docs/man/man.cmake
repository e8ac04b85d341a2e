# Man pages: docs/man/*.scd built with scdoc (Debian package scdoc) when it
# is installed, and installed to the man directories. Without scdoc the
# build goes on without them (the Debian package build requires it).
include(GNUInstallDirs)
find_program(SCDOC scdoc)
if(SCDOC)
  file(GLOB MAN_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/docs/man/*.scd)
  set(MAN_PAGES)
  foreach(src ${MAN_SOURCES})
    get_filename_component(page ${src} NAME_WLE) # certloop.8, certloop.toml.5
    string(REGEX REPLACE ".*\\.([0-9])$" "\\1" section ${page})
    set(out ${PROJECT_BINARY_DIR}/man/${page})
    add_custom_command(OUTPUT ${out}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${PROJECT_BINARY_DIR}/man
      COMMAND ${SCDOC} < ${src} > ${out}
      DEPENDS ${src}
      COMMENT "scdoc ${page}"
      VERBATIM)
    list(APPEND MAN_PAGES ${out})
    install(FILES ${out} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
  endforeach()
  add_custom_target(man ALL DEPENDS ${MAN_PAGES})
else()
  message(STATUS "scdoc not found: man pages not built")
endif()
