# Concurrency: a slow receiver holds back nobody, timeouts, concurrent writers.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use FindBin;
use lib "$FindBin::RealBin/../lib";
use CocoHooksTest;

my $recv = start_receiver();
my $node = new_node('concurrency', conf => "cocohooks.log_deliveries = 'all'\n");
$node->start;
create_extension($node);

# --- a slow hook and a fast hook on the same table and event
my ($hook_a, $hook_b) = split /\n/, $node->safe_psql('postgres', qq{
	CREATE TABLE c (id int PRIMARY KEY, v text);
	SELECT cocohooks.register_hook('c', 'post_save', '$recv->{url}/slow/5000');
	SELECT cocohooks.register_hook('c', 'post_save', '$recv->{url}/fast');
});

api_sql($node, q{
	BEGIN;
	INSERT INTO c SELECT g, 'x' FROM generate_series(1, 20) g;
	COMMIT;
});
my $committed = time();

my $b_recs = wait_records($recv, 20, 10, sub { $_[0]{path} eq '/fast' });
my $in_flight = stats($node)->{in_flight};
is(scalar(@$b_recs), 20, "fast hook received all 20 events");
my ($b_last) = sort { $b <=> $a } map { $_->{received_at} } @$b_recs;
my $b_lag = $b_last - $committed;
cmp_ok($b_lag, '<', 2, 'fast hook got all 20 within 2 s of commit');
note(sprintf('fast hook: last of 20 received %.3f s after commit', $b_lag));
cmp_ok($in_flight, '>', 0, 'slow deliveries still in flight then');
note("in_flight when the fast hook was done: $in_flight");
my %ids = map { body_of($_)->{document_id} => 1 } @$b_recs;
is(scalar(keys %ids), 20, 'fast hook got 20 distinct documents');

ok(wait_deliveries($node, '30 s'), 'slow deliveries finish');
is( $node->safe_psql('postgres', qq{
	SELECT count(*) FILTER (WHERE success AND status_code = 200) || ':' ||
	       count(*) FILTER (WHERE finished_at >= queued_at + interval '4.5 s')
	  FROM cocohooks.deliveries WHERE hook_id = $hook_a}),
	'20:20', 'slow hook: 20 successes, each finished after its 5 s answer');
is( $node->safe_psql('postgres', qq{
	SELECT count(*) FILTER (WHERE success) || ':' ||
	       count(*) FILTER (WHERE finished_at < queued_at + interval '2 s')
	  FROM cocohooks.deliveries WHERE hook_id = $hook_b}),
	'20:20', 'fast hook: 20 successes, each finished within 2 s');
note('slow hook durations (ms): '
	  . $node->safe_psql('postgres',
		"SELECT round(min(duration_ms)) || '..' || round(max(duration_ms)) FROM cocohooks.deliveries WHERE hook_id = $hook_a"));

# --- timeout_ms = 1000 against a 4 s answer
my $hook_t = $node->safe_psql('postgres', qq{
	CREATE TABLE tt (id int PRIMARY KEY);
	SELECT cocohooks.register_hook('tt', 'post_save', '$recv->{url}/slow/4000', timeout_ms => 1000,
		max_retries => 0);
});
my $log_offset = -s $node->logfile;
api_sql($node, 'INSERT INTO tt VALUES (1)');
ok(wait_deliveries($node), 'timed-out delivery finished');
my $row = $node->safe_psql('postgres', qq{
	SELECT success, status_code IS NULL, error IS NOT NULL AND error <> '', attempts, duration_ms
	  FROM cocohooks.deliveries WHERE hook_id = $hook_t});
my ($succ, $nostatus, $has_error, $attempts, $dur) = split /\|/, $row;
is("$succ|$nostatus|$has_error|$attempts", 'f|t|t|1',
	'timeout logged as a failure without status, with an error, after 1 attempt');
ok(defined $dur && $dur >= 900 && $dur < 2500,
	'failed after about 1 s') or diag("duration_ms = " . ($dur // 'undef'));
note("timeout_ms=1000 delivery failed after $dur ms");
note('timeout error: ' . $node->safe_psql('postgres',
	"SELECT error FROM cocohooks.deliveries WHERE hook_id = $hook_t"));
ok($node->log_contains(
		qr/cocohooks could not deliver post_save event of collection "tt" to hook $hook_t/,
		$log_offset),
	'timeout reported in the server log');

# --- four concurrent writers
$node->safe_psql('postgres', qq{
	CREATE TABLE p (id bigserial PRIMARY KEY, client int, v int);
	SELECT cocohooks.register_hook('p', 'post_save', '$recv->{url}/p');
});
ok(wait_deliveries($node), 'queue idle before pgbench');
my $before = stats($node);
my $script = PostgreSQL::Test::Utils::tempdir() . '/insert.sql';
PostgreSQL::Test::Utils::append_to_file($script,
	"SET cocohooks.api_session = on;\nINSERT INTO p (client, v) VALUES (:client_id, 1);\n");
my $t0 = time();
$node->command_ok(
	[ 'pgbench', '-n', '-c', '4', '-j', '2', '-t', '250', '-f', $script, 'postgres' ],
	'pgbench: 4 clients x 250 API-tagged inserts');
note(sprintf('pgbench 1000 inserts: %.2f s', time() - $t0));
ok(wait_deliveries($node, '60 s'), 'all pgbench events finished');
note(sprintf('pgbench start to all delivered: %.2f s', time() - $t0));
my $p = records($recv, sub { $_[0]{path} eq '/p' });
is(scalar(@$p), 1000, 'exactly 1000 requests received');
my %wid = map { $_->{headers}{'webhook-id'} => 1 } @$p;
is(scalar(keys %wid), 1000, '1000 distinct webhook-ids');
my %docs = map { body_of($_)->{document_id} => 1 } @$p;
is(scalar(keys %docs), 1000, '1000 distinct documents, no duplicates');
my $after = stats($node);
is($after->{delivered} - $before->{delivered}, 1000, 'stats.delivered increased by 1000');
is($after->{dropped} - $before->{dropped}, 0, 'nothing dropped');
is($node->safe_psql('postgres', 'SELECT count(*) FROM p'), '1000', '1000 rows written');

$node->stop;

# --- waiting for a connection slot does not count against the timeout:
# max_host_connections = 2, six 1 s requests to one receiver, timeout 1.8 s
my $node2 = new_node('slots', conf => "cocohooks.max_host_connections = 2\n");
$node2->start;
create_extension($node2);
my $recv2 = start_receiver();
$node2->safe_psql('postgres', qq{
	CREATE TABLE s (id int PRIMARY KEY);
	SELECT cocohooks.register_hook('s', 'post_save', '$recv2->{url}/slow/1000', timeout_ms => 1800);
});
$before = stats($node2);
api_sql($node2, 'INSERT INTO s SELECT generate_series(1, 6)');
ok(wait_deliveries($node2, '30 s'), 'six deliveries through two slots finished');
$after = stats($node2);
is($after->{delivered} - $before->{delivered}, 6,
	'all six delivered: time spent waiting for a slot is not part of the timeout');
my @at = sort { $a <=> $b } map { $_->{received_at} } @{ records($recv2) };
is(scalar(@at), 6, 'six requests received');
my $first_round = grep { $_ < $at[0] + 0.5 } @at;
is($first_round, 2, 'at most max_host_connections = 2 requests at once to one receiver');
note(sprintf('six 1 s requests through 2 slots took %.2f s', $at[-1] - $at[0]));
$node2->stop;

done_testing();
