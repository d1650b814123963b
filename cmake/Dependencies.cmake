# SPDX-License-Identifier: MIT
# Every dependency is a Debian package (see README: setup).
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
pkg_check_modules(URING REQUIRED IMPORTED_TARGET liburing)
pkg_check_modules(XXHASH REQUIRED IMPORTED_TARGET libxxhash)
# JSON of the Centrifugo client protocol and of token claims (libjansson-dev).
pkg_check_modules(JANSSON REQUIRED IMPORTED_TARGET jansson)
find_package(MbedTLS REQUIRED)
if(RINGCAST_BUILD_TESTS)
  pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)
endif()
find_path(SDT_INCLUDE_DIR sys/sdt.h)
