# Fault injection: the receiver is down while 1,000 events are written and
# comes back (same port) within the retry window.  Every event is then
# delivered exactly once with 2xx, after retries, and nothing fails.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use FindBin;
use lib "$FindBin::RealBin/../lib";
use CocoHooksTest;

my $N = 1000;

my $recv = start_receiver();
my $node = new_node('receiver_down', conf => "cocohooks.retry_max_backoff = '2s'\n");
$node->start;
create_extension($node);

my $hook = $node->safe_psql('postgres', qq{
	CREATE TABLE a (id int PRIMARY KEY, v text);
	SELECT cocohooks.register_hook('a', 'post_save', '$recv->{url}/a', max_retries => 10);
});

# the hook works while the receiver is up
api_sql($node, "INSERT INTO a VALUES (0, 'up')");
ok(wait_deliveries($node), 'first event finished');
is(scalar(@{ records($recv) }), 1, 'receiver got the first event');

# receiver down; 1,000 events in 10 transactions
stop_receiver($recv);
my $before = stats($node);
my $t0 = time();
api_sql($node, join('',
	map { my $lo = $_ * 100 + 1; my $hi = $lo + 99;
		  "INSERT INTO a SELECT g, 'down' FROM generate_series($lo, $hi) g;\n" } 0 .. 9));
note(sprintf('1000 events written in %.2f s with the receiver down', time() - $t0));

# every event fails its first attempt (connection refused) and its first
# retry (~1 s later) and waits for the second (~2 s, the cap, later)
ok( wait_until('two retries of every event', 20,
		sub { stats($node)->{retried} - $before->{retried} >= 2 * $N }),
	'every event was retried twice while the receiver is down');
my $down = stats($node);
is($down->{delivered} - $before->{delivered}, 0, 'nothing delivered while down');
is($down->{failed} - $before->{failed}, 0, 'nothing failed yet (retries left)');

# back up on the same port
restart_receiver($recv);
my $t_up = time();
note(sprintf('receiver down for %.2f s, %d retry attempts made meanwhile',
		time() - $t0, stats($node)->{retried} - $before->{retried}));
ok( wait_until("$N deliveries", 40,
		sub { stats($node)->{delivered} - $before->{delivered} >= $N }),
	'all events delivered once the receiver is back');
note(sprintf('all %d delivered %.2f s after the receiver came back', $N, time() - $t_up));
ok(wait_deliveries($node, '30 s'), 'wait_for_deliveries');

my $after = stats($node);
is($after->{delivered} - $before->{delivered}, $N, "stats.delivered + $N");
is($after->{failed} - $before->{failed}, 0, 'stats.failed + 0');
is($after->{dropped} - $before->{dropped}, 0, 'stats.dropped + 0');
my $retried = $after->{retried} - $before->{retried};
cmp_ok($retried, '>', 0, 'stats.retried > 0');
note("retry attempts for $N events: $retried");
is($node->safe_psql('postgres', 'SELECT count(*) FROM cocohooks.deliveries WHERE NOT success'),
	'0', 'no failure rows');

# the receiver's view: each event (webhook-id) answered once, all documents
my $recs = records($recv, sub { body_of($_[0])->{document}{v} eq 'down' });
my $by = by_webhook_id($recs);
is(scalar(@$recs), $N, "receiver recorded $N requests for the events");
is(scalar(keys %$by), $N, "$N distinct webhook-ids");
is(scalar(grep { @{ $by->{$_} } != 1 } keys %$by), 0, 'every webhook-id answered 2xx exactly once');
my %docs = map { body_of($_)->{document_id} => 1 } @$recs;
is(scalar(keys %docs), $N, 'every document arrived');
is(scalar(grep { $_->{path} ne '/a' } @$recs), 0, 'all to /a (answered 200)');

$node->stop;
done_testing();
