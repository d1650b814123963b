# SPDX-License-Identifier: MIT
# Every dependency is a Debian package (see README: setup).
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
pkg_check_modules(URING REQUIRED IMPORTED_TARGET liburing)
pkg_check_modules(XXHASH REQUIRED IMPORTED_TARGET libxxhash)
find_package(MbedTLS REQUIRED)
if(RINGCAST_BUILD_TESTS)
  pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)
endif()
find_path(SDT_INCLUDE_DIR sys/sdt.h)
