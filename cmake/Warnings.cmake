# SPDX-License-Identifier: MIT
# ringcast_warnings: the warning set, each flag probed so that an older or newer compiler
# never breaks a contributor's build. -Werror only with RINGCAST_WERROR.
include(CheckCCompilerFlag)
add_library(ringcast_warnings INTERFACE)
foreach(flag -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith
             -Wcast-align -Wvla -Wformat=2 -Wimplicit-fallthrough)
  string(MAKE_C_IDENTIFIER "HAVE${flag}" var)
  check_c_compiler_flag(${flag} ${var})
  if(${var})
    target_compile_options(ringcast_warnings INTERFACE ${flag})
  endif()
endforeach()
if(RINGCAST_WERROR)
  target_compile_options(ringcast_warnings INTERFACE -Werror)
endif()

# Frame pointers everywhere: perf's call graphs on machines without a PMU rely on them.
add_library(ringcast_codegen INTERFACE)
target_compile_options(ringcast_codegen INTERFACE -fno-omit-frame-pointer -g)
target_compile_definitions(ringcast_codegen INTERFACE _GNU_SOURCE)
if(RINGCAST_NATIVE)
  target_compile_options(ringcast_codegen INTERFACE -march=native)
endif()
target_link_libraries(ringcast_warnings INTERFACE ringcast_codegen)
