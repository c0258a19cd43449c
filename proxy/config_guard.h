// CONFIG SET through headroom reaches every data node. Some parameters are headroom's
// to own: changing them on the nodes behind its back would lock it out (requirepass,
// masterauth, TLS), move the nodes away from it (port, bind, unixsocket), turn off
// what the directory's hygiene relies on (notify-keyspace-events), or touch what a
// proxy has no business with (dir, dbfilename, replicaof, ...). Those are refused by
// name, the whole command with them, before anything is sent.
#pragma once

#include <span>
#include <string_view>

namespace headroom::proxy {

// The first parameter of a CONFIG SET (argv: CONFIG SET name value [name value ...])
// that headroom owns, or empty when there is none.
std::string_view owned_config_parameter(std::span<const std::string_view> argv);

}  // namespace headroom::proxy
