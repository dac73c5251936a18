# cw_warnings: an interface target carrying the warning flags for clusterwire's own code.
# Third-party headers are found as system includes, so their warnings stay out of the way.
add_library(cw_warnings INTERFACE)
target_compile_options(cw_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion
  -Wnon-virtual-dtor -Wold-style-cast -Woverloaded-virtual -Wimplicit-fallthrough
  -Wformat=2 -Wno-missing-field-initializers)
# Not -Wmissing-field-initializers: option structs have default member initializers and are
# meant to be filled partly ({.url = ...}); GCC 12 warns even for designated initializers.
# Not -Wnull-dereference: GCC 12 reports it inside libstdc++ and CLI11 at -O2 (false
# positives that no code of ours can avoid).
if(CW_WERROR)
  target_compile_options(cw_warnings INTERFACE -Werror)
endif()

# cw_library(NAME SOURCES...): a library of our own code with warnings and the repo root on
# its include path, so headers are included as "common/net/prefix.h".
function(cw_library name)
  add_library(${name} ${ARGN})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(${name} PRIVATE cw_warnings)
endfunction()

function(cw_executable name)
  add_executable(${name} ${ARGN})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})
  target_link_libraries(${name} PRIVATE cw_warnings)
endfunction()
