// The one table of every key a run config accepts (docs/CONFIG.md mirrors it): type,
// default, allowed range or values, a one-line meaning, and how it reads and writes a
// RunConfig. The loader, the resolved-config writer and the docs test all walk this table,
// so a key added here is parsed, validated, written back and required in the docs at once.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "launch/train_config.h"

namespace im::launch {

enum class ValueType { Bool, Int, Float, String };

// A key's value once read from TOML. Float keys always hold double (an integer given for a
// float key is converted on reading), int keys int64_t, so get/set never guess.
using ConfigValue = std::variant<bool, int64_t, double, std::string>;

struct ConfigKey {
  std::string path;  // dotted: "train.batch_size"; the table is everything before the last dot
  ValueType type = ValueType::Int;
  ConfigValue default_value;
  // Numbers: optional bounds; an exclusive bound is itself not allowed (lr > 0).
  std::optional<double> min, max;
  bool min_exclusive = false, max_exclusive = false;
  std::vector<std::string> choices;  // strings with a finite set of values; empty = free text
  bool non_empty = false;            // free-text strings that must not be ""
  bool from_preset = false;          // model.preset sets it unless the config gives it
  std::string default_note;          // docs text when the default is derived, not fixed
  std::string doc;                   // one line: what the key means
  std::function<void(RunConfig&, const ConfigValue&)> set;
  std::function<ConfigValue(const RunConfig&)> get;

  std::string table() const;  // "train" for "train.batch_size"
  std::string name() const;   // "batch_size" for "train.batch_size"
};

// Every key, grouped by table, tables in the order a resolved config writes them.
const std::vector<ConfigKey>& config_schema();

// nullptr when `path` is not a key.
const ConfigKey* find_config_key(std::string_view path);

// Every table path that may appear ("run", ..., "model", "model.filter", ...), in schema order.
const std::vector<std::string>& config_tables();

bool is_config_table(std::string_view path);

// "a boolean", "an integer", "a float", "a string": the words error messages use.
std::string type_phrase(ValueType type);

// Short type name for docs: "bool", "int", "float", "string".
std::string type_name(ValueType type);

// The allowed values of a number as prose ("1 to 65536", "at least 0", "greater than 0",
// "0 to less than 1"); empty when the key has no bounds or is not a number.
std::string range_text(const ConfigKey& key);

// True when `value` (of the key's type) is within the key's bounds; NaN never is.
bool in_range(const ConfigKey& key, const ConfigValue& value);

}  // namespace im::launch
