# cocohooks.durability = wal, what WAL it keeps: stats.durability and
# stats.wal_retained_bytes; past cocohooks.max_wal_retention the oldest
# waiting events are given up, each logged as failed with its payload, and
# redeliver() still sends them; DROP EXTENSION leaves no slot behind, and
# CREATE EXTENSION makes one again.  A server whose configuration cannot
# keep WAL says so and runs in memory mode.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use CocoHooksTest;

my $recv = start_receiver();
my $node = new_node('retention', conf => qq{
cocohooks.durability = wal
wal_level = replica
max_wal_senders = 0
cocohooks.queue_size = '64kB'
cocohooks.max_concurrent_deliveries = 4
cocohooks.max_wal_retention = '1MB'
cocohooks.retry_max_backoff = '2s'
});
$node->start;
create_extension($node);

my $slot_sql = q{SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'cocohooks%'};
is($node->safe_psql('postgres', 'SELECT durability FROM cocohooks.stats'), 'wal',
	'stats.durability shows the mode in force');
is($node->safe_psql('postgres', $slot_sql), '1', 'one slot keeps WAL for the events');

# 200 events of ~2 kB behind a slow receiver: few fit the queue, the rest
# wait in the WAL; then over 1 MB of other WAL passes them
$node->safe_psql('postgres', qq{
	CREATE TABLE r (id int PRIMARY KEY, pad text);
	CREATE TABLE churn (id int, pad text);
	SELECT cocohooks.register_hook('r', 'post_save', '$recv->{url}/slow/300/r');
});
api_sql($node, q{INSERT INTO r SELECT g, repeat('p', 2000) FROM generate_series(1, 200) g});
ok(wait_until('WAL kept for waiting events', 10, sub {
	$node->safe_psql('postgres', 'SELECT wal_retained_bytes FROM cocohooks.stats') > 0 }),
	'stats.wal_retained_bytes counts the WAL kept for waiting events');
$node->safe_psql('postgres',
	q{INSERT INTO churn SELECT g, repeat('c', 200) FROM generate_series(1, 20000) g});
$node->safe_psql('postgres', 'SELECT pg_switch_wal()');

ok(wait_deliveries($node, '120 s'), 'every event finished: delivered or given up');
my $given_up = $node->safe_psql('postgres', q{
	SELECT count(*) FROM cocohooks.deliveries
	 WHERE NOT success AND error = 'given up: WAL retention limit' AND payload IS NOT NULL});
cmp_ok($given_up, '>', 0, "past max_wal_retention events are given up, logged with their payload ($given_up)");
my %received = map { body_of($_)->{document_id} => 1 } @{ records($recv, sub { $_[0]{path} eq '/slow/300/r' }) };
my %logged = map { $_ => 1 } split /\n/, $node->safe_psql('postgres', q{
	SELECT document_id FROM cocohooks.deliveries WHERE error = 'given up: WAL retention limit'});
is(scalar(grep { !$received{$_} && !$logged{$_} } 1 .. 200), 0,
	'nothing disappears: each event was delivered or has a log row');
ok(wait_until('the WAL released', 10, sub {
	$node->safe_psql('postgres', 'SELECT wal_retained_bytes FROM cocohooks.stats') < 1024 * 1024 }),
	'the WAL is released once the events are finished (the restart point moves every 100 ms)');

# a given-up event can be sent again, under its webhook-id
my ($del_id, $webhook_id) = split /\|/, $node->safe_psql('postgres', q{
	SELECT id, webhook_id FROM cocohooks.deliveries
	 WHERE error = 'given up: WAL retention limit' ORDER BY id LIMIT 1});
my $before = scalar @{ records($recv, sub { $_[0]{headers}{'webhook-id'} eq $webhook_id }) };
is($node->safe_psql('postgres', "SELECT cocohooks.redeliver($del_id)"), 't', 'redeliver() a given-up event');
ok(wait_until('the redelivered event', 30, sub {
	@{ records($recv, sub { $_[0]{headers}{'webhook-id'} eq $webhook_id }) } > $before }),
	'the given-up event is sent under its webhook-id');

# events the queue carried and that wait to retry are given up too once
# their WAL is past the limit, instead of being retried until max_retries
$node->safe_psql('postgres', qq{
	CREATE TABLE q (id int PRIMARY KEY);
	SELECT cocohooks.register_hook('q', 'post_save', '$recv->{url}/status/503?q', max_retries => 20);
});
api_sql($node, q{INSERT INTO q SELECT g FROM generate_series(1, 20) g});
ok(wait_until('the first failures', 20, sub {
	@{ records($recv, sub { $_[0]{path} eq '/status/503?q' }) } >= 20 }),
	'20 events from the queue failed their first attempt and wait to retry');
$node->safe_psql('postgres',
	q{INSERT INTO churn SELECT g, repeat('c', 200) FROM generate_series(1, 20000) g});
$node->safe_psql('postgres', 'SELECT pg_switch_wal()');
ok(wait_deliveries($node, '120 s'), 'they finished');
is($node->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE error = 'given up: WAL retention limit' AND payload IS NOT NULL
	                          AND attempts < 21)
	       || ',' || count(*)
	  FROM cocohooks.deliveries WHERE collection = 'q'}), '20,20',
	'each was given up past the WAL retention limit, with its payload, before its retries ran out');
ok(wait_until('the WAL released', 10, sub {
	$node->safe_psql('postgres', 'SELECT wal_retained_bytes FROM cocohooks.stats') < 1024 * 1024 }),
	'and the WAL they held is released');

# DROP EXTENSION leaves nothing holding WAL; CREATE EXTENSION starts again
$node->safe_psql('postgres', 'DROP EXTENSION cocohooks CASCADE');
is($node->safe_psql('postgres', $slot_sql), '0', 'DROP EXTENSION leaves no replication slot');
$node->safe_psql('postgres', 'CREATE EXTENSION cocohooks');
is($node->safe_psql('postgres', $slot_sql), '1', 'CREATE EXTENSION makes the slot again');
$node->safe_psql('postgres', 'BEGIN; DROP EXTENSION cocohooks CASCADE; ROLLBACK');
is($node->safe_psql('postgres', $slot_sql), '1', 'a rolled-back DROP EXTENSION keeps the slot');
$node->stop;

# wal_level lowered to minimal with the slot there: PostgreSQL would refuse
# to start with any replication slot, so cocohooks removes its own and says so
$node->append_conf('postgresql.conf', "wal_level = minimal\nmax_wal_senders = 0\n");
my $log_offset = -s $node->logfile;
ok($node->start(fail_ok => 1), 'the server starts after wal_level was lowered to minimal');
like(slurp_file($node->logfile, $log_offset),
	qr/WARNING:  cocohooks removed 1 replication slots of its wal mode\n.*DETAIL:  "wal_level" is below replica/,
	'saying that it removed its replication slot, and why');
is($node->safe_psql('postgres', 'SELECT durability FROM cocohooks.stats'), 'memory',
	'and runs in memory mode');
$node->stop;

# a configuration that cannot keep WAL: memory mode, and it says so
my $minimal = new_node('minimal', conf => qq{
cocohooks.durability = wal
wal_level = minimal
max_wal_senders = 0
});
$minimal->start;
my ($ret, $out, $err) = $minimal->psql('postgres', 'CREATE EXTENSION cocohooks');
is($ret, 0, 'CREATE EXTENSION works where WAL cannot be kept');
like($err, qr/WARNING:  cocohooks keeps events in memory only.*\n.*"wal_level"/,
	'CREATE EXTENSION warns, naming the settings');
$minimal->safe_psql('postgres', 'CREATE TABLE m (id int PRIMARY KEY)');
($ret, $out, $err) = $minimal->psql('postgres',
	"SELECT cocohooks.register_hook('m', 'post_save', '$recv->{url}/m')");
like($err, qr/WARNING:  cocohooks keeps events in memory only/, 'register_hook warns too');
is($minimal->safe_psql('postgres', 'SELECT durability FROM cocohooks.stats'), 'memory',
	'stats.durability shows memory');
like(slurp_file($minimal->logfile), qr/WARNING:  cocohooks keeps events in memory only/,
	'the worker warns at its start');
$minimal->stop;

done_testing();
