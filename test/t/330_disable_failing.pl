# A hook that keeps failing is disabled (issue 20): once none of its
# deliveries succeeded for cocohooks.disable_failing_hooks_after (made
# short here), counted from its first failure after its last success, the
# worker disables it as for 410 Gone: disabled_reason, a WARNING, its
# waiting deliveries logged failed with their payload (redeliverable).  A
# hook with successes in between is not disabled; the clock survives a
# restart (cocohooks.hook_failing), and enable_hook starts a fresh one.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use FindBin;
use lib "$FindBin::RealBin/../lib";
use CocoHooksTest;

my $recv = start_receiver();
my $down_port = PostgreSQL::Test::Cluster::get_free_port();
my $node = new_node('failing', conf => "cocohooks.disable_failing_hooks_after = '3s'\n");
$node->start;
create_extension($node);

# --- a receiver that answers 500, and one that is down: both disabled
my ($h500, $hdown) = split /\n/, $node->safe_psql('postgres', qq{
	CREATE TABLE a (id int PRIMARY KEY, v text);
	SELECT cocohooks.register_hook('a', 'post_save', '$recv->{url}/status/500');
	SELECT cocohooks.register_hook('a', 'post_save', 'http://127.0.0.1:$down_port/down');
});
my $log_offset = -s $node->logfile;
api_sql($node, "INSERT INTO a SELECT g, 'v' || g FROM generate_series(1, 5) g");
ok(wait_until('both hooks disabled', 60, sub {
	$node->safe_psql('postgres', "SELECT count(*) FROM cocohooks.hooks WHERE collection = 'a'::regclass AND NOT enabled") eq '2' }),
	'both hooks are disabled');
ok(wait_deliveries($node, '30 s'), 'their deliveries finished');
for my $h ($h500, $hdown)
{
	like($node->safe_psql('postgres', "SELECT disabled_reason FROM cocohooks.hooks WHERE id = $h"),
		qr/^no delivery succeeded since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\S* \(cocohooks\.disable_failing_hooks_after = 3s\)$/,
		"hook $h: disabled_reason says since when");
	is($node->safe_psql('postgres', qq{
		SELECT count(*), count(payload), bool_and(NOT success)
		FROM cocohooks.deliveries WHERE hook_id = $h}),
		'5|5|t', "hook $h: its 5 deliveries are logged failed, with their payload");
}
like(slurp_file($node->logfile, $log_offset),
	qr/WARNING:  cocohooks disabled hook $h500: no delivery to it succeeded since/,
	'a WARNING in the server log names the hook');
is($node->safe_psql('postgres', qq{
	SELECT count(*) FILTER (WHERE error LIKE '%; the hook was disabled: no delivery succeeded since %'),
	       count(*) FILTER (WHERE error LIKE '%the hook was disabled%')
	FROM cocohooks.deliveries WHERE hook_id = $h500}),
	'1|5', 'the attempt that disabled it says so; the others were not retried');
cmp_ok($node->safe_psql('postgres', qq{
	SELECT count(*) FROM cocohooks.deliveries
	WHERE hook_id = $h500 AND error LIKE 'not sent: the hook was disabled at %: no delivery succeeded since %'}),
	'>=', 3, 'those waiting to retry were not sent again');
is($node->safe_psql('postgres', 'SELECT count(*) FROM cocohooks.hook_failing'), '0',
	'a disabled hook has no clock');

# once the receiver is up: enable_hook, and redeliver sends the logged ones
my $up = start_receiver(port => $down_port);
is($node->safe_psql('postgres', "SELECT cocohooks.enable_hook($hdown)"), 't', 'enable_hook');
is($node->safe_psql('postgres', qq{
	SELECT count(*) FILTER (WHERE cocohooks.redeliver(id)) FROM cocohooks.deliveries WHERE hook_id = $hdown}),
	'5', 'redeliver() queues the five again');
ok(wait_deliveries($node, '30 s'), 'redelivered');
is(scalar(@{ records($up, sub { $_[0]{path} eq '/down' }) }), 5, 'the receiver got all five');
is($node->safe_psql('postgres', "SELECT count(*) FROM cocohooks.deliveries WHERE hook_id = $hdown AND success"),
	'0', '(successes are not logged by default)');
is($node->safe_psql('postgres', "SELECT enabled FROM cocohooks.hooks WHERE id = $hdown"), 't',
	'and the hook stays enabled');

# --- a flapping receiver: failures, but a success at least every second
my $hflap = $node->safe_psql('postgres', qq{
	CREATE TABLE fl (id int PRIMARY KEY, v text);
	SELECT cocohooks.register_hook('fl', 'post_save', '$recv->{url}/if/bad/0/500',
		max_retries => 1);
});
for my $i (1 .. 8)
{
	api_sql($node, "INSERT INTO fl VALUES ($i * 2, 'bad'), ($i * 2 + 1, 'good')");
	usleep(800_000);
}
ok(wait_deliveries($node, '30 s'), 'the flapping hook\'s deliveries finished');
is($node->safe_psql('postgres', "SELECT enabled FROM cocohooks.hooks WHERE id = $hflap"), 't',
	'a hook with successes in between is not disabled');
is($node->safe_psql('postgres', "SELECT count(*) FROM cocohooks.deliveries WHERE hook_id = $hflap AND NOT success"),
	'8', 'its 8 bad events failed after their retries');

# --- the clock survives a restart
$node->safe_psql('postgres', "ALTER SYSTEM SET cocohooks.disable_failing_hooks_after = '1h'");
$node->reload;
my $port2 = PostgreSQL::Test::Cluster::get_free_port();
my $hr = $node->safe_psql('postgres', qq{
	CREATE TABLE r (id int PRIMARY KEY);
	SELECT cocohooks.register_hook('r', 'post_save', 'http://127.0.0.1:$port2/r');
});
api_sql($node, 'INSERT INTO r VALUES (1)');
ok(wait_until('the clock is written', 30, sub {
	$node->safe_psql('postgres', "SELECT count(*) FROM cocohooks.hook_failing WHERE hook_id = $hr") eq '1' }),
	'the first failure starts the clock, in cocohooks.hook_failing');
my $since = $node->safe_psql('postgres', "SELECT failing_since FROM cocohooks.hook_failing WHERE hook_id = $hr");
sleep 4;
$node->restart;
wait_worker($node, 30);
is($node->safe_psql('postgres', "SELECT failing_since FROM cocohooks.hook_failing WHERE hook_id = $hr"),
	$since, 'after the restart the clock is the same');
$log_offset = -s $node->logfile;
$node->safe_psql('postgres', "ALTER SYSTEM SET cocohooks.disable_failing_hooks_after = '3s'");
$node->reload;
ok(wait_until('the hook disabled', 60, sub {
	$node->safe_psql('postgres', "SELECT enabled FROM cocohooks.hooks WHERE id = $hr") eq 'f' }),
	'the next failure after the restart disables the hook');
is($node->safe_psql('postgres', qq{
	SELECT substring(disabled_reason from '^no delivery succeeded since (.*) \\(')::timestamptz = '$since'
	FROM cocohooks.hooks WHERE id = $hr}),
	't', 'disabled_reason gives the time of the first failure, before the restart');
ok(wait_deliveries($node, '30 s'), 'its delivery finished');
is($node->safe_psql('postgres', "SELECT count(*) FROM cocohooks.deliveries WHERE hook_id = $hr AND payload IS NOT NULL"),
	'1', 'and is logged failed with its payload');

# --- enable_hook starts a fresh clock
$node->safe_psql('postgres', "ALTER SYSTEM SET cocohooks.disable_failing_hooks_after = '1h'");
$node->reload;
$node->safe_psql('postgres', "SELECT cocohooks.enable_hook($hr)");
api_sql($node, 'INSERT INTO r VALUES (2)');
ok(wait_until('a new clock', 30, sub {
	$node->safe_psql('postgres', "SELECT count(*) FROM cocohooks.hook_failing WHERE hook_id = $hr") eq '1' }),
	'a failure of the enabled hook starts a clock');
is($node->safe_psql('postgres', "SELECT failing_since > '$since' FROM cocohooks.hook_failing WHERE hook_id = $hr"),
	't', 'a fresh one');
# the row is visible to the hook's owner only, as the hook is
$node->safe_psql('postgres', 'CREATE ROLE other LOGIN');
is($node->safe_psql('postgres', 'SET ROLE other; SELECT count(*) FROM cocohooks.hook_failing'), '0',
	'another role sees no clock of hooks it cannot see');
is($node->safe_psql('postgres', "SELECT cocohooks.enable_hook($hr); SELECT count(*) FROM cocohooks.hook_failing WHERE hook_id = $hr"),
	"t\n0", 'enable_hook on the enabled hook clears its clock');

$node->stop('immediate');
done_testing();
