# Per-hook statistics (issue 23): cocohooks.hook_stats counts each hook's
# deliveries and attempts by outcome (2xx, 4xx, 5xx, timeout, connection,
# blocked), keeps its last success, last failure and error, consecutive
# failures, commit-to-receipt latency percentiles and its lag (the oldest
# undelivered event, parked ones included); a tenant sees and resets only
# its hooks; the figures survive a clean restart and a crash resets them.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use FindBin;
use lib "$FindBin::RealBin/../lib";
use CocoHooksTest;

my $recv = start_receiver();
my $port = $recv->{port};
my $down_port = PostgreSQL::Test::Cluster::get_free_port();
my $node = new_node('hook_stats',
	allowed_networks => '127.0.0.0/8, ::1, ::ffff:127.0.0.0/104');
$node->start;
create_extension($node);

sub stat_of
{
	my ($hook, $cols) = @_;
	return $node->safe_psql('postgres',
		"SELECT $cols FROM cocohooks.hook_stats WHERE hook_id = $hook");
}

my ($hok, $h404, $h500, $hdown, $hslow, $hblocked, $hlat, $hidle) = split /\n/,
  $node->safe_psql('postgres', qq{
	CREATE TABLE t (id int PRIMARY KEY, v text);
	SELECT cocohooks.register_hook('t', 'post_save', '$recv->{url}/status/200');
	SELECT cocohooks.register_hook('t', 'post_save', '$recv->{url}/status/404', max_retries => 0);
	SELECT cocohooks.register_hook('t', 'post_save', '$recv->{url}/status/500', max_retries => 1);
	SELECT cocohooks.register_hook('t', 'post_save', 'http://127.0.0.1:$down_port/down', max_retries => 0);
	SELECT cocohooks.register_hook('t', 'post_save', '$recv->{url}/slow/1500', max_retries => 0,
		timeout_ms => 300);
	SELECT cocohooks.register_hook('t', 'post_save', 'http://[::ffff:127.0.0.1]:$port/blocked',
		max_retries => 0);
	SELECT cocohooks.register_hook('t', 'post_save', '$recv->{url}/slow/200', ordering => 'none');
	SELECT cocohooks.register_hook('t', 'post_delete', '$recv->{url}/status/200');
});

is($node->safe_psql('postgres',
	"SELECT count(*), sum(queued + delivered + failed + attempts_2xx) FROM cocohooks.hook_stats"),
	'8|0', 'a row per hook before any event, all zero');
is(stat_of($hidle, 'lag, retrying, parked, last_success IS NULL, latency_p50_ms IS NULL'),
	'00:00:00|0|0|t|t', 'an idle hook: no lag, nothing waiting, no latency');

# the mapped address is blocked from now on
$node->safe_psql('postgres',
	"ALTER SYSTEM SET cocohooks.allowed_networks = '127.0.0.0/8, ::1'");
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
usleep(1_500_000);

my $t0 = time();
api_sql($node, "INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 10) g");
ok(wait_deliveries($node, '60 s'), 'the deliveries finished');

is(stat_of($hok, 'collection, event, enabled, queued, delivered, failed, dropped, attempts_2xx, '
	  . 'attempts_4xx + attempts_5xx + attempts_timeout + attempts_connection + attempts_blocked, '
	  . 'consecutive_failures, last_error IS NULL, last_failure IS NULL, latency_samples, lag, retrying'),
	't|post_save|t|10|10|0|0|10|0|0|t|t|10|00:00:00|0', '200: ten delivered, ten 2xx attempts');
my ($last_success_age) = stat_of($hok, 'extract(epoch FROM now() - last_success)');
cmp_ok($last_success_age, '<', time() - $t0 + 1, 'last_success is recent');

is(stat_of($h404, 'queued, delivered, failed, attempts_4xx, consecutive_failures, last_error, '
	  . 'last_success IS NULL, last_failure IS NOT NULL'),
	'10|0|10|10|10|receiver answered with HTTP status 404|t|t',
	'404: ten failed, ten 4xx attempts, the last error');
is(stat_of($h500, 'queued, delivered, failed, attempts_5xx, consecutive_failures'),
	'10|0|10|20|20', '500 with one retry: twenty 5xx attempts, ten failed');
my $conn_err = stat_of($hdown, 'queued, failed, attempts_connection, last_error');
like($conn_err, qr/^10\|10\|10\|.*(refused|connect)/i, 'a receiver that is down: connection failures');
is(stat_of($hslow, 'failed, attempts_timeout, attempts_connection'), '10|10|0',
	'a receiver slower than timeout_ms: timeouts');
like(stat_of($hblocked, 'failed, attempts_blocked, last_error'),
	qr/^10\|10\|blocked: ::ffff:127\.0\.0\.1 is an IPv4-mapped address/,
	'an address the network guard refuses: blocked');
is(stat_of($hidle, 'queued'), '0', 'a hook of another event has none');

# latency from commit to receipt: the receiver answers after 200 ms
my ($p50, $p95, $p99, $n) = split /\|/,
  stat_of($hlat, 'latency_p50_ms, latency_p95_ms, latency_p99_ms, latency_samples');
is($n, 10, 'ten latencies counted');
cmp_ok($p50, '>=', 200 / 1.2, "p50 ($p50 ms) is at least the receiver's 200 ms (within a bucket)");
cmp_ok($p50, '<', 2000, 'and not far above it');
ok($p50 <= $p95 && $p95 <= $p99, "p50 <= p95 <= p99 ($p50, $p95, $p99)");
my ($ok_p99) = stat_of($hok, 'latency_p99_ms');
cmp_ok($ok_p99, '<', $p50, "a receiver answering at once is faster ($ok_p99 ms)");

# --- lag and retrying: a receiver asking to come back in 10 s (parked)
my $hlate = $node->safe_psql('postgres', qq{
	CREATE TABLE l (id int PRIMARY KEY);
	SELECT cocohooks.register_hook('l', 'post_save', '$recv->{url}/status/503?retry_after=10',
		retry_for => '15 seconds');
});
api_sql($node, 'INSERT INTO l SELECT generate_series(1, 3)');
ok(wait_until('three parked', 30, sub { stat_of($hlate, 'parked') eq '3' }),
	'the three deliveries are parked');
usleep(2_000_000);
my ($lag, $retrying, $consecutive) = split /\|/,
  stat_of($hlate, 'extract(epoch FROM lag), retrying, consecutive_failures');
cmp_ok($lag, '>=', 2, "lag counts the parked events' age ($lag s)");
is($retrying, 3, 'they are retrying');
is($consecutive, 3, 'three consecutive failures');
ok(wait_deliveries($node, '60 s'), 'at the end of their retry_for, they fail');
is(stat_of($hlate, 'parked, retrying, lag, failed'), '0|0|00:00:00|3', 'then nothing is left waiting');

# a delivery waiting to retry in memory counts in retrying and lag too
my $hmem = $node->safe_psql('postgres', qq{
	CREATE TABLE r (id int PRIMARY KEY);
	SELECT cocohooks.register_hook('r', 'post_save', '$recv->{url}/status/500',
		max_retries => 2);
});
api_sql($node, 'INSERT INTO r VALUES (1)');
ok(wait_until('waiting to retry', 10, sub { stat_of($hmem, 'retrying') eq '1' }),
	'a delivery waiting in memory to retry is counted');
cmp_ok(stat_of($hmem, 'parked'), '==', 0, 'not parked');
ok(wait_until('lag seen', 10, sub { stat_of($hmem, 'lag > interval \'0\'') eq 't' }),
	'and its event is the lag');

# --- a tenant sees and resets only its hooks
$node->safe_psql('postgres', qq{
	CREATE ROLE tenant LOGIN;
	GRANT CREATE, USAGE ON SCHEMA public TO tenant;
	SET ROLE tenant;
	CREATE TABLE mine (id int PRIMARY KEY);
	SELECT cocohooks.register_hook('mine', 'post_save', '$recv->{url}/status/200');
});
my $hmine = $node->safe_psql('postgres', "SELECT id FROM cocohooks.hooks WHERE collection = 'mine'::regclass");
$node->safe_psql('postgres', 'SET cocohooks.api_session = on; SET ROLE tenant; INSERT INTO mine VALUES (1)');
ok(wait_deliveries($node), 'delivered');
is($node->safe_psql('postgres', 'SET ROLE tenant; SELECT hook_id, delivered FROM cocohooks.hook_stats'),
	"$hmine|1", 'the tenant sees its one hook');
is($node->safe_psql('postgres', 'SET ROLE tenant; SELECT count(*) FROM cocohooks.hook_counters()'),
	'1', 'hook_counters() too');
my ($ret, $out, $err) = $node->psql('postgres', "SET ROLE tenant; SELECT cocohooks.reset_stats($hok)");
like($err, qr/ERROR:  hook $hok does not exist/, "reset_stats of another's hook is refused");
$node->safe_psql('postgres', 'SET ROLE tenant; SELECT cocohooks.reset_stats()');
is(stat_of($hmine, 'delivered, attempts_2xx, last_success IS NULL'), '0|0|t', 'its own hook is reset');
is(stat_of($hok, 'delivered'), '10', "the others' are not");

# --- a clean restart keeps the figures, reset_stats() zeroes them, a crash resets them
my $before = stat_of($h500, 'queued, failed, attempts_5xx, consecutive_failures, last_error, last_failure');
my $lat_before = stat_of($hlat, 'latency_samples');
$node->restart;
wait_worker($node, 30);
is(stat_of($h500, 'queued, failed, attempts_5xx, consecutive_failures, last_error, last_failure'),
	$before, 'a clean restart keeps the counters');
is(stat_of($hlat, 'latency_samples'), $lat_before, 'and the latency histogram');
ok(!-e $node->data_dir . '/cocohooks.hook_stats.' .
	  $node->safe_psql('postgres', "SELECT oid FROM pg_database WHERE datname = 'postgres'"),
	'the saved file is read and removed');

$node->safe_psql('postgres', "SELECT cocohooks.reset_stats($h500)");
is(stat_of($h500, 'queued, failed, attempts_5xx, consecutive_failures, last_error IS NULL, '
	  . 'stats_reset > now() - interval \'1 minute\''),
	'0|0|0|0|t|t', 'reset_stats(hook) zeroes one hook');
isnt(stat_of($h404, 'failed'), '0', 'and leaves the others');

$node->stop('immediate');
$node->start;
wait_worker($node, 30);
is(stat_of($h404, 'queued, failed, attempts_4xx'), '0|0|0', 'a crash resets them');

# --- a hook past cocohooks.max_hook_stats has none until entries are freed
$node->safe_psql('postgres', 'SELECT cocohooks.unregister_hook(id) FROM cocohooks.hooks');
$node->append_conf('postgresql.conf', "cocohooks.max_hook_stats = 3\n");
$node->restart;
wait_worker($node, 30);
usleep(1_000_000);
my @f = split /\n/, $node->safe_psql('postgres', qq{
	CREATE TABLE f (id int PRIMARY KEY);
	SELECT cocohooks.register_hook('f', 'post_save', '$recv->{url}/status/200') FROM generate_series(1, 4);
});
my $log_offset = -s $node->logfile;
api_sql($node, 'INSERT INTO f VALUES (1)');
ok(wait_deliveries($node), 'delivered');
my @with = split /\n/, $node->safe_psql('postgres',
	"SELECT hook_id FROM cocohooks.hook_stats WHERE delivered = 1 ORDER BY 1");
is(scalar(@with), 3, 'with room for 3 entries, 3 of the 4 hooks have statistics');
like(slurp_file($node->logfile, $log_offset),
	qr/LOG:  cocohooks keeps no statistics for hook \d+: all 3 entries are in use/,
	'the fourth is said in the server log');
my ($without) = grep { my $h = $_; !grep { $_ eq $h } @with } @f;
$node->safe_psql('postgres', "SELECT cocohooks.unregister_hook($with[0])");
# the worker frees entries of gone hooks at most every 10 s while full
usleep(11_000_000);
api_sql($node, 'INSERT INTO f VALUES (2)');
ok(wait_deliveries($node), 'delivered');
api_sql($node, 'INSERT INTO f VALUES (3)');
ok(wait_deliveries($node), 'delivered');
cmp_ok(stat_of($without, 'delivered'), '>=', 1,
	'once the worker has freed an unregistered hook\'s entry, the fourth has statistics');
is(stat_of($with[1], 'delivered'), '3', 'the others keep counting');

$node->stop;
done_testing();
