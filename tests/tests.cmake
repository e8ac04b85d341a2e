# Test registration. Every tests/unit/test_*.c and tests/loop/test_*.c is one
# cmocka executable (labels unit / loop); every tests/integration/test_*.sh is
# one integration test run with bash. Helpers shared by tests live in
# tests/support/*.c.
pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)

file(GLOB SUPPORT_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/support/*.c)
if(SUPPORT_SOURCES)
  add_library(certloop_testsupport STATIC ${SUPPORT_SOURCES})
  target_link_libraries(certloop_testsupport PUBLIC certloop_core PkgConfig::CMOCKA)
  target_include_directories(certloop_testsupport PUBLIC ${PROJECT_SOURCE_DIR}/tests/support)
else()
  add_library(certloop_testsupport INTERFACE)
  target_link_libraries(certloop_testsupport INTERFACE certloop_core PkgConfig::CMOCKA)
endif()

foreach(layer unit loop)
  file(GLOB TEST_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/${layer}/test_*.c)
  foreach(src ${TEST_SOURCES})
    get_filename_component(name ${src} NAME_WE)
    add_executable(${name} ${src})
    target_link_libraries(${name} PRIVATE certloop_testsupport)
    add_test(NAME ${layer}/${name} COMMAND ${name})
    set_tests_properties(${layer}/${name} PROPERTIES LABELS ${layer} SKIP_RETURN_CODE 77
      ENVIRONMENT "TESTDATA=${PROJECT_SOURCE_DIR}/tests/data;SOURCE_DIR=${PROJECT_SOURCE_DIR}"
      TIMEOUT 300)
  endforeach()
endforeach()

file(GLOB INTEGRATION_TESTS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/integration/test_*.sh)
# Integration tests run in parallel (scripts/test.sh: ctest -j4): each one
# starts its own world on free loopback ports in its own temp dir, and most
# of their time is spent waiting on Pebble, DNS and timers, not on a core.
# The few that load the machine themselves (hundreds of orders, connection
# floods, kill -9 loops) claim two of ctest's slots so fewer run beside them.
set(HEAVY_INTEGRATION_TESTS test_crash test_fd_budget test_dns01_many test_resume test_browser
    test_pg_fleet test_pg_fleet_down test_pg_fleet_crash)
foreach(script ${INTEGRATION_TESTS})
  get_filename_component(name ${script} NAME_WE)
  add_test(NAME integration/${name} COMMAND bash ${script})
  set_tests_properties(integration/${name} PROPERTIES LABELS integration
    SKIP_RETURN_CODE 77 TIMEOUT 900
    ENVIRONMENT "CERTLOOP=$<TARGET_FILE:certloop>;BUILD_DIR=${PROJECT_BINARY_DIR};SOURCE_DIR=${PROJECT_SOURCE_DIR}")
  if(name IN_LIST HEAVY_INTEGRATION_TESTS)
    set_tests_properties(integration/${name} PROPERTIES PROCESSORS 2)
  endif()
endforeach()
# The dashboard in headless Chromium (tests/browser/, puppeteer-core from npm
# into the build tree): label "browser" too (ctest -L browser); screenshots
# in test-artifacts/browser/ of the build tree.
if(EXISTS ${PROJECT_SOURCE_DIR}/tests/integration/test_browser.sh)
  set_tests_properties(integration/test_browser PROPERTIES LABELS "integration;browser")
endif()

# The toml-test conformance run (every case of files-toml-1.0.0 through toml-decode).
# The cases are vendored from toml-test 1.0.0 under tests/conformance/toml-test
# (MIT, LICENSE beside them), so a fresh clone tests itself.
if(EXISTS ${PROJECT_SOURCE_DIR}/tests/conformance/toml_test.sh)
  add_test(NAME conformance/toml-test COMMAND bash ${PROJECT_SOURCE_DIR}/tests/conformance/toml_test.sh
           $<TARGET_FILE:toml-decode> ${PROJECT_SOURCE_DIR}/tests/conformance/toml-test/tests)
  set_tests_properties(conformance/toml-test PROPERTIES LABELS "unit;conformance" TIMEOUT 300)
endif()
