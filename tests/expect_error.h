// Checks that a call throws im::Error whose message mentions given pieces (the bad
// value, the op's name), so error tests pin down what a user would read.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/error.h"

namespace im::testing {

template <typename F>
::testing::AssertionResult throws_error_mentioning(F&& fn, const std::vector<std::string>& pieces) {
  try {
    fn();
  } catch (const Error& e) {
    const std::string what = e.what();
    for (const std::string& p : pieces) {
      if (what.find(p) == std::string::npos)
        return ::testing::AssertionFailure() << "message \"" << what << "\" lacks \"" << p << "\"";
    }
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "no im::Error was thrown";
}

}  // namespace im::testing
