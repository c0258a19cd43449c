// Splits an inline command line into arguments with Redis's rules (sdssplitargs):
// whitespace separates; "double quotes" take \n \r \t \b \a \\ \" and \xHH escapes;
// 'single quotes' take \' only; a closing quote must be followed by a space or the end.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace headroom::resp {

// Fills `out` (cleared first). Returns false on unbalanced quotes.
bool split_inline_args(std::string_view line, std::vector<std::string>& out);

}  // namespace headroom::resp
