# SPDX-License-Identifier: MIT
# Every dependency is a Debian package (see README: setup). The broker and the load tool need
# only what `tools/deps.sh build` installs; the tests also need cmocka (`tools/deps.sh test`).
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
pkg_check_modules(URING REQUIRED IMPORTED_TARGET liburing)
pkg_check_modules(XXHASH REQUIRED IMPORTED_TARGET libxxhash)
# JSON of the Centrifugo client protocol and of token claims (libjansson-dev).
pkg_check_modules(JANSSON REQUIRED IMPORTED_TARGET jansson)
find_package(MbedTLS REQUIRED)
if(RINGCAST_BUILD_TESTS)
  # A machine set up to run the broker has no cmocka: build the programs and say how to get the
  # tests, rather than fail. The presets that CI runs set RINGCAST_REQUIRE_TESTS, so there a
  # missing cmocka stops the configure instead of quietly testing nothing.
  pkg_check_modules(CMOCKA QUIET IMPORTED_TARGET cmocka)
  if(NOT CMOCKA_FOUND)
    if(RINGCAST_REQUIRE_TESTS)
      message(FATAL_ERROR "cmocka not found, and RINGCAST_REQUIRE_TESTS is ON: "
                          "run tools/deps.sh test to install the test dependencies")
    endif()
    message(STATUS "cmocka not found: building without the tests "
                   "(tools/deps.sh test installs what they need)")
    # A normal variable shadows the cache option for this configure only, so the tests come
    # back by themselves once cmocka is installed.
    set(RINGCAST_BUILD_TESTS OFF)
  endif()
endif()
find_path(SDT_INCLUDE_DIR sys/sdt.h)
