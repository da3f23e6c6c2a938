# The header-only C++17 wrapper include/wxmedia.hpp (issue 20).
# Included by the top Makefile; uses C_BUILD, C_LINK_SHARED, C_SAN from mk/c.mk.
#
#   make cpp-test   build tests/cpp/test_hpp.cpp with -Werror under
#                   ASan/UBSan and run it against the emulator

.PHONY: cpp-test cpp-test-build

CPP_TEST_BIN := $(C_BUILD)/test/wxm_hpp-asan
CPP_WARN := -std=c++17 -Wall -Wextra -Werror -pedantic

cpp-test-build: $(CPP_TEST_BIN)

$(CPP_TEST_BIN): $(ROOT)/tests/cpp/test_hpp.cpp $(ROOT)/include/wxmedia.hpp $(HEADER) $(C_BUILD)/lib/.stamp
	@mkdir -p $(dir $@)
	$(CXX) $(CPP_WARN) -O1 -g $(C_SAN) -I$(ROOT)/include -o $@ $< $(C_LINK_SHARED)

cpp-test: lib
	@$(MAKE) --no-print-directory -C $(ROOT) cpp-test-build
	ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	    $(ROOT)/examples/c/with-emulator.sh $(EMULATOR) -- $(CPP_TEST_BIN)
