# -DCW_SANITIZE=ON builds everything (tests included) with ASan and UBSan; UBSan findings
# abort so that a test run cannot pass over them.
if(CW_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=undefined
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()
