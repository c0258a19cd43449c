#include "proxy/reply_encode.h"

#include "balancer/control_conn.h"
#include "resp/reply_writer.h"

namespace headroom::proxy {

void encode_reply(const redisReply* r, resp::Buffer& out) {
  if (r == nullptr) return;
  switch (r->type) {
    case REDIS_REPLY_STATUS: resp::add_simple(out, balancer::reply_text(r)); break;
    case REDIS_REPLY_ERROR: resp::add_error(out, balancer::reply_text(r)); break;
    case REDIS_REPLY_INTEGER: resp::add_integer(out, r->integer); break;
    case REDIS_REPLY_STRING: resp::add_bulk(out, balancer::reply_text(r)); break;
    case REDIS_REPLY_NIL: resp::add_nil(out); break;
    case REDIS_REPLY_ARRAY:
      resp::add_array_header(out, static_cast<int64_t>(r->elements));
      for (size_t i = 0; i < r->elements; ++i) encode_reply(r->element[i], out);
      break;
    default: resp::add_error(out, "ERR unexpected reply from a server"); break;
  }
}

}  // namespace headroom::proxy
