# Dependencies come from Debian packages, installed by scripts/deps.sh.
# docs/dependencies.md gives the reason for each one.
find_package(yaml-cpp REQUIRED)
find_package(CLI11 REQUIRED)
find_package(nlohmann_json 3 REQUIRED)
if(CW_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(CW_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()
