// How config values are written as text: TOML literals for the resolved config, and the
// same spelling inside error messages so a user sees exactly what to type.
#pragma once

#include <string>
#include <string_view>

#include "launch/config_schema.h"

namespace im::launch {

// Shortest text that reads back to the same double, always a TOML float ("1.0", "0.002",
// "1e-08", "inf", "nan").
std::string format_float(double value);

// A TOML basic string with quotes, escaping quotes, backslashes and control characters, so
// it is one line and reads back unchanged.
std::string toml_quote(std::string_view text);

// The TOML literal of a value: true, 64, 0.002, "cosine".
std::string toml_literal(const ConfigValue& value);

// Replaces line breaks and other control characters with escapes, for text that has to stay
// on one line (error messages, comments) but is not a TOML string.
std::string one_line(std::string_view text);

// True when `text` is well-formed UTF-8 (what TOML requires of every string).
bool is_valid_utf8(std::string_view text);

}  // namespace im::launch
