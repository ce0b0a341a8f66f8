// The one doctest main of the test suite. Before the tests run it checks
// that each test case's name is one ctest can run by name: CMake reads a
// `;` as a list separator, and a name cut there matches no test, so ctest
// would report a test that never ran as passed. (Said on stdout: test
// discovery at build time shows it.)
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstring>
#include <iostream>

int main(int argc, char** argv) {
    int bad = 0;
    for (const auto& tc : doctest::detail::getRegisteredTests())
        if (std::strchr(tc.m_name, ';')) {
            std::cout << tc.m_file.c_str() << ":" << tc.m_line << ": the test case name \"" << tc.m_name
                      << "\" has a ';', which ctest cannot pass back to it\n";
            ++bad;
        }
    if (bad) return 1;
    doctest::Context context(argc, argv);
    return context.run();
}
