# -DCW_SANITIZE=ON builds everything (tests included) with ASan and UBSan; UBSan findings
# abort so that a test run cannot pass over them.
if(CW_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=undefined
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
  # GCC 12's -Wmaybe-uninitialized misfires inside libstdc++'s <regex> and nlohmann's iterators
  # once the sanitizers' instrumentation changes inlining; the plain build keeps the warning.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    add_compile_options(-Wno-maybe-uninitialized)
  endif()
endif()
