# Shell completion: bash (bash-completion's directory, loaded on demand) and
# zsh (Debian's vendor-completions under /usr, site-functions elsewhere;
# both are in zsh's default fpath).
include(GNUInstallDirs)
install(FILES ${PROJECT_SOURCE_DIR}/completions/certloop.bash
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME certloop)
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(ZSH_COMPLETION_DIR ${CMAKE_INSTALL_DATADIR}/zsh/vendor-completions)
else()
  set(ZSH_COMPLETION_DIR ${CMAKE_INSTALL_DATADIR}/zsh/site-functions)
endif()
install(FILES ${PROJECT_SOURCE_DIR}/completions/_certloop DESTINATION ${ZSH_COMPLETION_DIR})
