// Fails when an op in the registry has no gradient check, or when a check names an
// op the registry does not know.
#include <gtest/gtest.h>

#include <set>

#include "core/op_registry.h"
#include "tests/gradcheck.h"

TEST(GradcheckCoverage, EveryRegisteredOpHasAGradcheck) {
  std::set<std::string> covered;
  for (const auto& c : im::testing::gradcheck_cases())
    for (const auto& op : c.ops) covered.insert(op);
  std::vector<std::string> missing;
  for (const auto& op : im::op_registry())
    if (!covered.count(op.name)) missing.push_back(op.name);
  std::string list;
  for (const auto& m : missing) list += " " + m;
  EXPECT_TRUE(missing.empty()) << missing.size() << " registered ops lack a gradcheck:" << list;
}

TEST(GradcheckCoverage, CasesNameOnlyRegisteredOps) {
  for (const auto& c : im::testing::gradcheck_cases())
    for (const auto& op : c.ops)
      EXPECT_TRUE(im::op_registry_contains(op)) << c.name << " names unknown op '" << op << "'";
}
