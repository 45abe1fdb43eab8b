// Loading a run config: TOML file, then --set overrides, each checked against the schema
// (launch/config_schema.h) with one-line errors that say where, which key and what was expected.
#include "launch/config.h"

#include <toml++/toml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>

#include "launch/config_rules.h"
#include "launch/config_schema.h"
#include "launch/config_suggest.h"
#include "launch/config_value.h"
#include "layers/model_config.h"

namespace im::launch {

namespace {

// Where one setting came from: a line of the file, or one --set argument.
struct Origin {
  std::string file;
  uint32_t line = 0;
  std::optional<std::string> override_text;

  // The start of an error line: "x.toml:12" or "--set train.lr=abc".
  std::string where() const {
    if (override_text) return "--set " + one_line(*override_text);
    return line > 0 ? file + ":" + std::to_string(line) : file;
  }
};

struct Setting {
  const ConfigKey* key;
  ConfigValue value;
  Origin origin;
};

[[noreturn]] void fail(const Origin& origin, const std::string& body) {
  throw ConfigError(origin.where() + ": " + body);
}

// "a string (\"64\")", "an integer (3)", "a table": what the user actually wrote.
std::string describe(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return "a string (" + toml_quote(node.as_string()->get()) + ")";
    case toml::node_type::integer:
      return "an integer (" + std::to_string(node.as_integer()->get()) + ")";
    case toml::node_type::floating_point:
      return "a float (" + format_float(node.as_floating_point()->get()) + ")";
    case toml::node_type::boolean:
      return std::string("a boolean (") + (node.as_boolean()->get() ? "true" : "false") + ")";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

// The node as the key's type; integers are fine where a float is expected, not the reverse.
std::optional<ConfigValue> value_as(const toml::node& node, ValueType type) {
  switch (type) {
    case ValueType::Bool:
      if (const auto* b = node.as_boolean()) return ConfigValue(b->get());
      break;
    case ValueType::Int:
      if (const auto* i = node.as_integer()) return ConfigValue(i->get());
      break;
    case ValueType::Float:
      if (const auto* f = node.as_floating_point()) return ConfigValue(f->get());
      if (const auto* i = node.as_integer()) return ConfigValue(static_cast<double>(i->get()));
      break;
    case ValueType::String:
      if (const auto* s = node.as_string()) return ConfigValue(s->get());
      break;
  }
  return std::nullopt;
}

// Range, allowed values and non-emptiness of one value.
void validate(const ConfigKey& key, const ConfigValue& value, const Origin& origin) {
  const std::string shown = key.path + " = " + toml_literal(value);
  if (key.type == ValueType::String) {
    const std::string& s = std::get<std::string>(value);
    if (key.non_empty && s.empty()) fail(origin, key.path + " must not be empty");
    if (!key.choices.empty() &&
        std::find(key.choices.begin(), key.choices.end(), s) == key.choices.end()) {
      std::string list;
      for (const std::string& c : key.choices) list += (list.empty() ? "" : ", ") + c;
      fail(origin, shown + " is not one of: " + list);
    }
  }
  if (!in_range(key, value)) fail(origin, shown + " is out of range (" + range_text(key) + ")");
}

// A setting from a node; `name_key` adds the key to type errors (an override names it already).
Setting make_setting(const ConfigKey& key, const toml::node& node, Origin origin, bool name_key) {
  std::optional<ConfigValue> value = value_as(node, key.type);
  if (!value) {
    fail(origin, (name_key ? key.path + ": " : "") + "expected " + type_phrase(key.type) +
                     ", got " + describe(node));
  }
  validate(key, *value, origin);
  return Setting{&key, std::move(*value), std::move(origin)};
}

std::string did_you_mean(const std::string& suggestion) {
  return suggestion.empty() ? "" : " (did you mean '" + suggestion + "'?)";
}

std::vector<std::string> key_paths() {
  std::vector<std::string> paths;
  for (const ConfigKey& key : config_schema()) paths.push_back(key.path);
  return paths;
}

// The body of an error for a path that is no key: unknown, or a table where a key was expected.
std::string not_a_key(const std::string& path) {
  if (is_config_table(path)) {
    std::string keys;
    for (const ConfigKey& key : config_schema())
      if (key.table() == path) keys += (keys.empty() ? "" : ", ") + key.name();
    return "'" + path + "' is a table, not a key (its keys: " + keys + ")";
  }
  return "unknown key '" + one_line(path) + "'" + did_you_mean(suggest_path(path, key_paths()));
}

struct Syntax {
  std::string description;
  uint32_t line = 0, column = 0;
};

// toml::parse that reports a syntax error as a value, whether toml++ throws or not.
std::optional<Syntax> parse_toml(std::string_view text, std::string_view name, toml::table& out) {
#if TOML_EXCEPTIONS
  try {
    out = toml::parse(text, name);
  } catch (const toml::parse_error& e) {
    return Syntax{std::string(e.description()), e.source().begin.line, e.source().begin.column};
  }
#else
  toml::parse_result result = toml::parse(text, name);
  if (!result) {
    const toml::parse_error& e = result.error();
    return Syntax{std::string(e.description()), e.source().begin.line, e.source().begin.column};
  }
  out = std::move(result).table();
#endif
  return std::nullopt;
}

// One entry of the file that is not a known table: a key, or something in the wrong place.
struct Entry {
  uint32_t line, column;
  std::string path;
  const toml::node* node;
};

void collect_entries(const toml::table& table, const std::string& prefix, std::vector<Entry>& out) {
  for (auto&& [k, node] : table) {
    const std::string path =
        prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    if (node.is_table() && is_config_table(path)) {
      collect_entries(*node.as_table(), path, out);
    } else {
      out.push_back(Entry{k.source().begin.line, k.source().begin.column, path, &node});
    }
  }
}

// The text of config file `path`; a missing, unreadable or directory path is a ConfigError.
std::string read_config_file(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (!fs::exists(status)) throw ConfigError("config file '" + path + "' not found");
  if (fs::is_directory(status)) throw ConfigError("config file '" + path + "' is a directory");
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in) throw ConfigError("config file '" + path + "' cannot be read");
  return text.str();
}

// The settings of TOML `text`, in file order; errors name `source` (a file name) and the line.
std::vector<Setting> read_text_settings(const std::string& text, const std::string& source) {
  toml::table doc;
  if (std::optional<Syntax> err = parse_toml(text, source, doc)) {
    throw ConfigError(source + ":" + std::to_string(err->line) + ":" + std::to_string(err->column) +
                      ": TOML syntax error: " + one_line(err->description));
  }

  std::vector<Entry> entries;
  collect_entries(doc, "", entries);
  // toml++ tables are sorted by key; report problems in the order they appear in the file.
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.line, a.column) < std::tie(b.line, b.column);
  });

  std::vector<Setting> settings;
  for (const Entry& e : entries) {
    const Origin origin{source, e.line, std::nullopt};
    if (const ConfigKey* key = find_config_key(e.path)) {
      settings.push_back(make_setting(*key, *e.node, origin, /*name_key=*/true));
    } else if (is_config_table(e.path)) {
      fail(origin, e.path + ": expected a table, got " + describe(*e.node));
    } else if (e.node->is_table()) {
      fail(origin, "unknown table '" + one_line(e.path) + "'" +
                       did_you_mean(suggest_path(e.path, config_tables())));
    } else {
      fail(origin, not_a_key(e.path));
    }
  }
  return settings;
}

std::string trim(std::string_view s) {
  const size_t begin = s.find_first_not_of(" \t");
  if (begin == std::string_view::npos) return "";
  return std::string(s.substr(begin, s.find_last_not_of(" \t") - begin + 1));
}

Setting read_override(const std::string& text) {
  const Origin origin{"", 0, text};
  const size_t eq = text.find('=');
  const std::string path =
      eq == std::string::npos ? "" : trim(std::string_view(text).substr(0, eq));
  if (path.empty()) fail(origin, "expected key=value");
  const ConfigKey* key = find_config_key(path);
  if (!key) fail(origin, not_a_key(path));

  // The value is TOML (1e-3, true, "x y"); text that is not one TOML value is a bare string.
  const std::string raw = text.substr(eq + 1);
  toml::table doc;
  if (!parse_toml("v = " + raw, "--set", doc) && doc.size() == 1 && doc.contains("v"))
    return make_setting(*key, *doc.get("v"), origin, /*name_key=*/false);
  if (!is_valid_utf8(raw)) fail(origin, "the value is not valid UTF-8");
  return make_setting(*key, toml::value<std::string>(raw), origin, /*name_key=*/false);
}

}  // namespace

RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides) {
  return load_run_config_text(read_config_file(path), path, overrides);
}

RunConfig load_run_config_text(const std::string& toml_text, const std::string& origin,
                               const std::vector<std::string>& overrides) {
  std::vector<Setting> settings = read_text_settings(toml_text, origin);
  for (const std::string& text : overrides) settings.push_back(read_override(text));

  RunConfig cfg;
  for (const ConfigKey& key : config_schema()) key.set(cfg, key.default_value);
  cfg.source_file = origin;
  cfg.overrides = overrides;

  // Who set each key, in order of application; rule violations blame the latest of their keys.
  std::map<std::string, std::pair<size_t, Origin>> set_by;
  size_t order = 0;

  // The preset is a base layer under every explicit model key, wherever either appears.
  const Setting* preset = nullptr;
  for (const Setting& s : settings)
    if (s.key->path == "model.preset") preset = &s;
  if (preset) {
    const std::string& name = std::get<std::string>(preset->value);
    if (!layers::apply_preset(name, cfg.model))
      fail(preset->origin, "model.preset = " + toml_quote(name) + " has no sizes defined");
    for (const ConfigKey& key : config_schema())
      if (key.from_preset || key.path == "model.preset") set_by[key.path] = {order, preset->origin};
    ++order;
  }
  for (const Setting& s : settings) {
    if (s.key->path == "model.preset") continue;
    s.key->set(cfg, s.value);
    set_by[s.key->path] = {order++, s.origin};
  }
  if (!set_by.count("run.dir")) cfg.run_dir = "runs/" + cfg.name;

  if (std::optional<RuleViolation> v = check_config_rules(cfg)) {
    const std::pair<size_t, Origin>* blamed = nullptr;
    for (const std::string& key : v->keys) {
      auto it = set_by.find(key);
      if (it != set_by.end() && (!blamed || it->second.first > blamed->first)) blamed = &it->second;
    }
    fail(blamed ? blamed->second : Origin{origin, 0, std::nullopt}, v->message);
  }
  return cfg;
}

}  // namespace im::launch
