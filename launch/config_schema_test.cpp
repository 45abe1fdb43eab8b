// The key table itself: it agrees with the struct defaults and the presets, docs/CONFIG.md
// documents every key as the table has it, and its helpers (suggestions, TOML spelling) work.
#include "launch/config_schema.h"

#include <gtest/gtest.h>

#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "launch/config_suggest.h"
#include "launch/config_value.h"
#include "layers/model_config.h"

namespace im::launch {
namespace {

TEST(ConfigSchema, DefaultsAreTheStructDefaults) {
  const RunConfig defaults;
  for (const ConfigKey& key : config_schema())
    EXPECT_EQ(key.get(defaults), key.default_value) << key.path;
}

TEST(ConfigSchema, SetThenGetGivesTheValueBack) {
  // Catches a key wired to the wrong member: each key's write must show up in its own read
  // and in no other key's.
  for (const ConfigKey& key : config_schema()) {
    RunConfig cfg;
    ConfigValue changed;
    switch (key.type) {
      case ValueType::Bool:
        changed = !std::get<bool>(key.default_value);
        break;
      case ValueType::Int:
        changed = std::get<int64_t>(key.default_value) + 3;
        break;
      case ValueType::Float:
        changed = std::get<double>(key.default_value) + 0.25;
        break;
      case ValueType::String:
        changed = std::get<std::string>(key.default_value) + "x";
        break;
    }
    key.set(cfg, changed);
    EXPECT_EQ(key.get(cfg), changed) << key.path;
    for (const ConfigKey& other : config_schema()) {
      if (&other == &key) continue;
      EXPECT_EQ(other.get(cfg), other.default_value) << key.path << " also changed " << other.path;
    }
  }
}

TEST(ConfigSchema, KeysAreUniqueTypedAndInKnownTables) {
  std::set<std::string> seen;
  const std::vector<std::string> tables = {"run",  "data",  "model", "model.filter", "model.imf",
                                           "loss", "optim", "train", "checkpoint",   "dist"};
  EXPECT_EQ(config_tables(), tables);
  for (const ConfigKey& key : config_schema()) {
    EXPECT_TRUE(seen.insert(key.path).second) << "duplicate " << key.path;
    EXPECT_TRUE(is_config_table(key.table())) << key.path;
    EXPECT_EQ(find_config_key(key.path), &key);
    EXPECT_FALSE(key.doc.empty()) << key.path;
    const size_t want_index = key.type == ValueType::Bool    ? 0
                              : key.type == ValueType::Int   ? 1
                              : key.type == ValueType::Float ? 2
                                                             : 3;
    EXPECT_EQ(key.default_value.index(), want_index) << key.path;
    EXPECT_TRUE(in_range(key, key.default_value)) << key.path << " default is out of its range";
    if (!key.choices.empty()) {
      EXPECT_EQ(key.type, ValueType::String) << key.path;
      bool listed = false;
      for (const std::string& c : key.choices)
        listed = listed || c == std::get<std::string>(key.default_value);
      EXPECT_TRUE(listed) << key.path << " default is not one of its choices";
    }
  }
  EXPECT_EQ(find_config_key("train.nope"), nullptr);
  EXPECT_EQ(find_config_key("train"), nullptr);
}

TEST(ConfigSchema, PresetKeysAreExactlyWhatPresetsSet) {
  std::set<std::string> changed_by_some_preset;
  const RunConfig defaults;
  for (const char* preset : {"nano", "tiny", "small", "base"}) {
    RunConfig cfg;
    ASSERT_TRUE(layers::apply_preset(preset, cfg.model));
    for (const ConfigKey& key : config_schema()) {
      if (key.get(cfg) == key.get(defaults)) continue;
      if (key.path != "model.preset") changed_by_some_preset.insert(key.path);
      EXPECT_TRUE(key.from_preset || key.path == "model.preset")
          << preset << " changes " << key.path << ", which is not marked from_preset";
    }
  }
  for (const ConfigKey& key : config_schema()) {
    if (!key.from_preset) continue;
    EXPECT_TRUE(changed_by_some_preset.count(key.path)) << key.path << " is set by no preset";
  }
}

TEST(ConfigSchema, RangeText) {
  EXPECT_EQ(range_text(*find_config_key("train.batch_size")), "1 to 65536");
  EXPECT_EQ(range_text(*find_config_key("optim.lr")), "greater than 0");
  EXPECT_EQ(range_text(*find_config_key("optim.grad_clip")), "at least 0");
  EXPECT_EQ(range_text(*find_config_key("model.drop_path")), "0 to less than 1");
  EXPECT_EQ(range_text(*find_config_key("run.name")), "");
  const ConfigKey& lr = *find_config_key("optim.lr");
  EXPECT_FALSE(in_range(lr, 0.0));
  EXPECT_TRUE(in_range(lr, 1e-12));
  EXPECT_FALSE(in_range(lr, std::numeric_limits<double>::infinity()));
  const ConfigKey& drop = *find_config_key("model.drop_path");
  EXPECT_TRUE(in_range(drop, 0.0));
  EXPECT_FALSE(in_range(drop, 1.0));
}

// The cells docs/CONFIG.md must show for a key: type, default, allowed values.
std::vector<std::string> doc_cells(const ConfigKey& key) {
  std::string def = "`" + toml_literal(key.default_value) + "`";
  if (key.from_preset) def = "preset (nano: " + def + ")";
  if (!key.default_note.empty()) def = key.default_note;
  std::string allowed = range_text(key);
  for (const std::string& c : key.choices) allowed += (allowed.empty() ? "`" : ", `") + c + "`";
  if (allowed.empty()) allowed = key.non_empty ? "not empty" : "any";
  return {type_name(key.type), def, allowed};
}

// Rows of the key tables under "## Keys": "| `path` | type | default | allowed | meaning |".
std::map<std::string, std::vector<std::string>> doc_rows() {
  std::ifstream in(std::string(IM_SOURCE_DIR) + "/docs/CONFIG.md");
  std::map<std::string, std::vector<std::string>> rows;
  std::string line;
  bool in_keys = false;  // only the "## Keys" section; other tables (rules) name keys too
  while (std::getline(in, line)) {
    if (line.rfind("## ", 0) == 0) in_keys = line == "## Keys";
    if (!in_keys || line.rfind("| `", 0) != 0) continue;
    std::vector<std::string> cells;
    std::stringstream ss(line.substr(2));
    for (std::string cell; std::getline(ss, cell, '|');) {
      const size_t b = cell.find_first_not_of(' '), e = cell.find_last_not_of(' ');
      cells.push_back(b == std::string::npos ? "" : cell.substr(b, e - b + 1));
    }
    const std::string path = cells.at(0).substr(1, cells.at(0).size() - 2);  // strip backticks
    rows[path] = std::vector<std::string>(cells.begin() + 1, cells.end());
  }
  return rows;
}

TEST(ConfigDocs, EveryKeyIsDocumentedAsTheSchemaHasIt) {
  const auto rows = doc_rows();
  ASSERT_FALSE(rows.empty()) << "no key table found in docs/CONFIG.md";
  for (const ConfigKey& key : config_schema()) {
    auto it = rows.find(key.path);
    if (it == rows.end()) {
      ADD_FAILURE() << key.path << " is missing from docs/CONFIG.md";
      continue;
    }
    const std::vector<std::string> want = doc_cells(key);
    ASSERT_GE(it->second.size(), 4u) << key.path << ": row needs type, default, allowed, meaning";
    for (size_t i = 0; i < want.size(); ++i)
      EXPECT_EQ(it->second[i], want[i]) << key.path << " column " << i + 2 << " in docs/CONFIG.md";
    EXPECT_FALSE(it->second[3].empty()) << key.path << " has no meaning in docs/CONFIG.md";
  }
  for (const auto& [path, cells] : rows)
    EXPECT_NE(find_config_key(path), nullptr) << "docs/CONFIG.md documents unknown key " << path;
}

TEST(ConfigSuggest, EditDistance) {
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(edit_distance("abc", ""), 3u);
  EXPECT_EQ(edit_distance("train", "train"), 0u);
  EXPECT_EQ(edit_distance("trian", "train"), 2u);
  EXPECT_EQ(edit_distance("lr", "lrr"), 1u);
}

TEST(ConfigSuggest, NearestThenSameName) {
  const std::vector<std::string> c = {"optim.lr", "train.epochs", "train.min_lr"};
  EXPECT_EQ(suggest_path("train.epoch", c), "train.epochs");
  EXPECT_EQ(suggest_path("train.lr", c), "optim.lr");
  EXPECT_EQ(suggest_path("lr", c), "optim.lr");
  EXPECT_EQ(suggest_path("data.frobnicate", c), "");
  // The closer of two candidates within reach wins.
  EXPECT_EQ(suggest_path("abcd", {"abxy", "abcx"}), "abcx");
}

TEST(ConfigValueText, FloatsReadBackAsFloats) {
  EXPECT_EQ(format_float(1.0), "1.0");
  EXPECT_EQ(format_float(-3.0), "-3.0");
  EXPECT_EQ(format_float(0.002), "0.002");
  EXPECT_EQ(format_float(1e-8), "1e-08");
  EXPECT_EQ(format_float(1e20), "1e+20");
  EXPECT_EQ(format_float(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(format_float(std::numeric_limits<double>::infinity()), "inf");
}

TEST(ConfigValueText, QuotingEscapesWhatTomlNeeds) {
  EXPECT_EQ(toml_quote("plain é"), "\"plain é\"");
  EXPECT_EQ(toml_quote("a\"b\\c\nd\te\x01"), "\"a\\\"b\\\\c\\nd\\te\\u0001\"");
  EXPECT_EQ(toml_literal(ConfigValue(true)), "true");
  EXPECT_EQ(toml_literal(ConfigValue(int64_t{-7})), "-7");
  EXPECT_EQ(one_line("a\nb\tc"), "a\\nb\\x09c");
}

TEST(ConfigValueText, Utf8Validation) {
  EXPECT_TRUE(is_valid_utf8("plain"));
  EXPECT_TRUE(is_valid_utf8("é ∑ 𝄞"));
  EXPECT_FALSE(is_valid_utf8("\xff"));
  EXPECT_FALSE(is_valid_utf8("\xc3"));          // truncated
  EXPECT_FALSE(is_valid_utf8("\xc0\xaf"));      // overlong '/'
  EXPECT_FALSE(is_valid_utf8("\xed\xa0\x80"));  // UTF-16 surrogate
}

}  // namespace
}  // namespace im::launch
