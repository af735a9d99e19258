# A failing hook does not flood the server log (issue 23.5): its first
# failed attempt gets its full line, saying the hook is failing; the next
# ones are counted, in one summary line per hook at most every
# cocohooks.log_failures_every (2 s here); its first success writes one
# "recovered" line with the count of attempts that failed since it started
# failing.  Every failed delivery still has its row in cocohooks.deliveries.
# While deliveries wait, the worker's row in pg_stat_activity says on what.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use FindBin;
use lib "$FindBin::RealBin/../lib";
use CocoHooksTest;

my $flag = PostgreSQL::Test::Utils::tempdir('flag') . '/failing';
open(my $fh, '>', $flag) or die "cannot create $flag: $!";
close $fh;
my $recv = start_receiver(fail_while => $flag);
my $node = new_node('quiet', conf => "cocohooks.log_failures_every = '2s'\n"
	  . "cocohooks.retry_max_backoff = '1s'\n");
$node->start;
create_extension($node);
is($node->safe_psql('postgres', "SELECT boot_val FROM pg_settings WHERE name = 'cocohooks.log_failures_every'"),
	'60', 'log_failures_every is 1 min by default');

my $hook = $node->safe_psql('postgres', qq{
	CREATE TABLE q (id int PRIMARY KEY);
	SELECT cocohooks.register_hook('q', 'post_save', '$recv->{url}/q', max_retries => 2,
		ordering => 'none');
});
my $log_offset = -s $node->logfile;

# the log's lines about the hook since the start
sub log_text { return slurp_file($node->logfile, $log_offset); }
sub failed_requests { return scalar(@{ records($recv, sub { $_[0]{failed} }) }); }

# (attempts, deliveries failed for good) summed over the summary lines
sub summed
{
	my ($attempts, $for_good, $lines) = (0, 0, 0);
	for (log_text() =~ /cocohooks hook $hook is still failing: (\d+) attempts failed and (\d+) deliveries failed for good in the last \d+ s/g)
	{
		$lines++ % 2 ? ($for_good += $_) : ($attempts += $_);
	}
	return ($attempts, $for_good, $lines / 2);
}

# --- 20 events, 3 attempts each, all failing: 60 failed attempts
api_sql($node, 'INSERT INTO q SELECT generate_series(1, 20)');
ok(wait_until('20 failure rows', 60, sub {
		$node->safe_psql('postgres', "SELECT count(*) FROM cocohooks.deliveries WHERE hook_id = $hook AND NOT success") == 20 }),
	'every delivery failed for good and has its row in cocohooks.deliveries');
is(failed_requests(), 60, 'the receiver answered 60 attempts with 503');
ok(wait_until('the summary lines to count them all', 15, sub {
		my ($a, $g) = summed(); $a == 59 && $g == 20 }),
	'summary lines count the 59 attempts after the first and the 20 deliveries failed for good');
my ($a, $g, $nsummaries) = summed();
note("after 60 failed attempts: summary lines sum to $a attempts, $g failed for good, in $nsummaries lines");

my $log = log_text();
my @each = $log =~ /LOG:  cocohooks could not deliver post_save event of collection "q" to hook $hook: ([^\n]*)/g;
is(scalar(@each), 1, 'one line of its own for the 60 failed attempts: the first');
like($each[0] // '', qr/^receiver answered with HTTP status 503$/, 'with its error');
like($log,
	qr/could not deliver post_save event of collection "q" to hook $hook: [^\n]*\n[^\n]*DETAIL:  Attempt 1 of 3, retrying in \d+ ms\. URL: \S+\/q, webhook-id: \S+, document_id: "\d+"\. Hook $hook is failing since \S+ \S+: its next failed attempts are summed up in a line at most every 2s, until a delivery to it succeeds\./,
	'its detail as before (attempt, what next, URL, webhook-id), and that the hook is failing now');
cmp_ok($nsummaries, '>=', 1, 'at least one summary line');
cmp_ok($nsummaries, '<=', 6, "and few: $nsummaries summary lines, not one per attempt");
like($log, qr/cocohooks hook $hook is still failing: \d+ attempts failed [^\n]*\n[^\n]*DETAIL:  Failing since \S+ \S+: \d+ attempts failed and \d+ deliveries failed for good since then\. The last error: receiver answered with HTTP status 503\./,
	'a summary line says since when, the totals and the last error');
my @times = map { $_->{received_at} } @{ records($recv) };
my $window = @times ? $times[-1] - $times[0] : 0;
note(sprintf('the 60 attempts took %.1f s', $window));

# --- while deliveries wait to retry, pg_stat_activity says so
$node->safe_psql('postgres', "SELECT cocohooks.alter_hook($hook, max_retries => 20)");
api_sql($node, 'INSERT INTO q SELECT generate_series(21, 30)');
my $activity = '';
ok(wait_until('the worker shows what it waits on', 20, sub {
		$activity = $node->safe_psql('postgres',
			"SELECT state || ': ' || query FROM pg_stat_activity WHERE backend_type = 'cocohooks worker' AND datname = 'postgres'");
		$activity =~ /waiting to retry \(next in \d+ s\)/ }),
	'pg_stat_activity: the worker waits for retries');
like($activity, qr/^idle: waiting: \d+ deliveries in flight, ([1-9]|10) waiting to retry \(next in \d+ s\), 0 for their pace, 0 behind their document$/,
	"and says how many ($activity)");

# its wait has a name of its own where PostgreSQL allows (17 and later)
my $wait_event = $node->safe_psql('postgres', 'SHOW server_version_num') >= 170000
  ? 'CocohooksWorkerMain' : 'Extension';
ok(wait_until("wait_event $wait_event", 10, sub {
		$node->safe_psql('postgres',
			"SELECT wait_event FROM pg_stat_activity WHERE backend_type = 'cocohooks worker' AND datname = 'postgres'")
		  eq $wait_event }),
	"pg_stat_activity: the worker's wait_event is $wait_event");

# --- the receiver recovers: one line
my $failed_before = failed_requests();
ok(wait_until('more failed attempts', 20, sub { failed_requests() >= $failed_before + 10 }),
	'the new events fail too');
unlink $flag or die "cannot remove $flag: $!";
ok(wait_deliveries($node, '60 s'), 'the waiting deliveries succeed once the receiver answers 200');
my $failed_all = failed_requests();
ok(wait_until('the recovered line', 10, sub { log_text() =~ /cocohooks hook $hook recovered/ }),
	'a line says the hook recovered');
$log = log_text();
my @recovered = $log =~ /LOG:  cocohooks hook $hook recovered: (\d+) attempts failed since (\S+ \S+)\n[^\n]*DETAIL:  Deliveries that failed for good meanwhile: (\d+);/g;
is(scalar(@recovered), 3, 'one recovered line');
is($recovered[0], $failed_all, "it counts every failed attempt since the hook started failing ($failed_all)");
is($recovered[2], 20, 'and the 20 deliveries that failed for good');
@each = $log =~ /cocohooks could not deliver post_save event of collection "q" to hook $hook/g;
is(scalar(@each), 1, 'still one line of its own for all those failed attempts');
($a, $g, $nsummaries) = summed();
note("lines about the hook for $failed_all failed attempts: 1 first, $nsummaries summaries, 1 recovered");
cmp_ok($a + 1, '<=', $failed_all, 'the summary lines counted no attempt twice');

ok(wait_until('the worker waits for events', 10, sub {
		$node->safe_psql('postgres',
			"SELECT query FROM pg_stat_activity WHERE backend_type = 'cocohooks worker' AND datname = 'postgres'")
		  eq 'waiting for events' }),
	'pg_stat_activity: with nothing pending, the worker waits for events');

# --- failing again after the recovery: a fresh first line
open($fh, '>', $flag) or die "cannot create $flag: $!";
close $fh;
$node->safe_psql('postgres', "SELECT cocohooks.alter_hook($hook, max_retries => 0)");
api_sql($node, 'INSERT INTO q VALUES (31)');
ok(wait_deliveries($node), 'finished');
@each = log_text() =~ /cocohooks could not deliver post_save event of collection "q" to hook $hook/g;
is(scalar(@each), 2, 'failing again after a success: its first failure has a line of its own again');

# --- log_failures_every = 0: a line per failed attempt, as before 0.3
$node->safe_psql('postgres', q{
	ALTER SYSTEM SET cocohooks.log_failures_every = 0;
	SELECT pg_reload_conf();
});
usleep(500_000);
api_sql($node, 'INSERT INTO q SELECT generate_series(32, 34)');
ok(wait_deliveries($node), 'finished');
@each = log_text() =~ /cocohooks could not deliver post_save event of collection "q" to hook $hook/g;
is(scalar(@each), 5, 'log_failures_every = 0: every failed attempt has its line');

$node->stop;
done_testing();
