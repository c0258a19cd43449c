#include <doctest/doctest.h>

#include "proxy/notification_relay.h"

using headroom::proxy::relays_notifications;

TEST_CASE("the names whose subscriptions go to every node for keyspace notifications") {
  // Channels: the notification channels, of any database (the relay passes on database 0's).
  CHECK(relays_notifications(0, "__keyspace@0__:user:1"));
  CHECK(relays_notifications(0, "__keyevent@0__:del"));
  CHECK(relays_notifications(0, "__keyevent@3__:del"));
  CHECK_FALSE(relays_notifications(0, "news"));
  CHECK_FALSE(relays_notifications(0, "__keys"));  // a channel is a name, not a pattern
  CHECK_FALSE(relays_notifications(0, "*"));
  // Patterns: any that can match one.
  CHECK(relays_notifications(1, "*"));
  CHECK(relays_notifications(1, "__key*@0__:*"));
  CHECK(relays_notifications(1, "__keyspace@0__:user:*"));
  CHECK(relays_notifications(1, "__keyevent@?__:del"));
  CHECK(relays_notifications(1, "_[_]keyspace@0__:*"));
  CHECK_FALSE(relays_notifications(1, "news.*"));
  CHECK_FALSE(relays_notifications(1, "__keyx*"));
  CHECK_FALSE(relays_notifications(1, "a*"));
  // Shard channels are never notifications.
  CHECK_FALSE(relays_notifications(2, "__keyspace@0__:k"));
}
