# Retries for a time (issue 20): a new hook retries for a day (retry_for),
# with no limit on the count (max_retries NULL); retries stop at whichever
# limit comes first, the last one at the retry_for deadline; max_retries
# => 0 still means no retry; a hook of 0.2 (retry_for NULL, max_retries N)
# retries N times.  The back-off's cap grows with the time since the
# event's commit, Retry-After is honoured up to the deadline, and a retry
# due 8 s or more ahead is parked until its time (docs/reference.md, Retry
# schedule).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use CocoHooksTest;

my $recv = start_receiver();
# a line per failed attempt (by default a failing hook's attempts after its
# first are only counted, test/t/365): the delays are read from them
my $node = new_node('horizon', conf => "cocohooks.retry_max_backoff = '10s'\n"
	  . "cocohooks.log_failures_every = 0\n");
$node->start;
create_extension($node);

# The receiver's records of a path, oldest first.
sub attempts_of
{
	my ($path) = @_;
	return records($recv, sub { $_[0]{path} eq $path });
}

# --- the defaults of a new hook
my $hook = $node->safe_psql('postgres', qq{
	CREATE TABLE d (id int PRIMARY KEY);
	SELECT cocohooks.register_hook('d', 'post_save', '$recv->{url}/d');
});
is($node->safe_psql('postgres',
		"SELECT retry_for, max_retries IS NULL FROM cocohooks.hooks WHERE id = $hook"),
	'1 day|t', 'a new hook retries for a day, with no limit on the count');
is((split /\n/, $node->safe_psql('postgres', qq{
	SELECT cocohooks.register_hook('d', 'post_save', '$recv->{url}/d', '{}', NULL, 15000, 2, NULL, NULL, 'none');
	SELECT retry_for || ' ' || max_retries FROM cocohooks.hooks ORDER BY id DESC LIMIT 1}))[-1],
	'1 day 2', 'positional calls of 0.2 keep working, and get the new retry_for');
my ($ret, $out, $err) = $node->psql('postgres',
	"SELECT cocohooks.register_hook('d', 'post_save', '$recv->{url}/d', retry_for => '0 s')");
like($err, qr/invalid retry_for "00:00:00".*must be a finite interval greater than zero/s,
	'retry_for must be greater than zero');

# --- four hooks failing with 503, each with its own limits
$node->safe_psql('postgres', qq{
	CREATE TABLE f (id int PRIMARY KEY);
	-- as a hook registered before the update: no retry_for, max_retries 2
	SELECT cocohooks.register_hook('f', 'post_save', '$recv->{url}/status/503?old',
		max_retries => 2, retry_for => NULL);
	-- retries for 6 s, no limit on the count
	SELECT cocohooks.register_hook('f', 'post_save', '$recv->{url}/status/503?six',
		retry_for => '6 s');
	-- no retry at all
	SELECT cocohooks.register_hook('f', 'post_save', '$recv->{url}/status/503?zero',
		max_retries => 0);
	-- Retry-After 3 s, honoured; the retry after the second clamped to the deadline
	SELECT cocohooks.register_hook('f', 'post_save', '$recv->{url}/status/503?retry_after=3',
		retry_for => '5 s');
	-- Retry-After 9 s: parked; its last retry clamped to the deadline
	SELECT cocohooks.register_hook('f', 'post_save', '$recv->{url}/status/503?retry_after=9',
		retry_for => '12 s');
});
my $log_offset = -s $node->logfile;
api_sql($node, 'INSERT INTO f VALUES (1)');
ok(wait_until('a parked retry', 30,
		sub { $node->safe_psql('postgres', 'SELECT count(*) FROM cocohooks.retry_queue') eq '1' }),
	'the retry due in 9 s is parked');
is($node->safe_psql('postgres', q{
	SELECT next_attempt - parked_at BETWEEN '8.5 s' AND '9.5 s' FROM cocohooks.retry_queue}),
	't', 'its row says when: after the Retry-After');
ok(wait_deliveries($node, '60 s'), 'every delivery finished');

my %rows = map { my ($u, @r) = split /\|/; ($u => join('|', @r)) } split /\n/,
  $node->safe_psql('postgres', q{
	SELECT substring(h.url from '\?.*$'), d.success, d.attempts,
	       extract(epoch FROM d.finished_at - d.queued_at)::numeric(10,1)
	FROM cocohooks.deliveries d JOIN cocohooks.hooks h ON h.id = d.hook_id
	WHERE h.collection = 'f'::regclass});
note("log rows: " . join('; ', map { "$_ => $rows{$_}" } sort keys %rows));

my $old = attempts_of('/status/503?old');
is(scalar(@$old), 3, 'a hook with max_retries 2 and no retry_for: three attempts');
like($rows{'?old'} // '', qr/^f\|3\|/, 'logged failed after 3 attempts');

my $six = attempts_of('/status/503?six');
my ($six_attempts, $six_elapsed) = (split /\|/, $rows{'?six'} // 'x|0|0')[1, 2];
cmp_ok(scalar(@$six), '>=', 4, 'retry_for 6 s: retried with the back-off until the deadline (' . scalar(@$six) . ' attempts)');
is($six_attempts, scalar(@$six), 'its log row counts every attempt');
cmp_ok($six_elapsed, '>=', 6.0, 'its last attempt was at the deadline, not before');
cmp_ok($six_elapsed, '<', 8.0, 'and retries stopped there');
ok($node->log_contains(qr/Attempt \d+ \(retrying until [^)]+\), retrying in \d+ ms\. URL: \S+\?six/),
	'the server log says until when an unlimited hook retries');
ok($node->log_contains(qr/not retried: its retry_for ended at \S+ \S+\. URL: \S+\?six/),
	'and why it stopped');

is(scalar(@{ attempts_of('/status/503?zero') }), 1, 'max_retries => 0: one attempt');
like($rows{'?zero'} // '', qr/^f\|1\|/, 'logged failed after 1 attempt');

my $ra = attempts_of('/status/503?retry_after=3');
is(scalar(@$ra), 3, 'Retry-After 3 s, retry_for 5 s: three attempts');
if (@$ra == 3)
{
	my $gap1 = $ra->[1]{received_at} - $ra->[0]{received_at};
	my $gap2 = $ra->[2]{received_at} - $ra->[1]{received_at};
	note(sprintf('Retry-After 3: gaps %.2f s, %.2f s', $gap1, $gap2));
	cmp_ok($gap1, '>=', 2.9, 'the first retry waited for Retry-After');
	cmp_ok($gap2, '<', 2.9, 'the second went at the deadline, before Retry-After');
}
like($rows{'?retry_after=3'} // '', qr/^f\|3\|[56]\./, 'logged failed at the deadline');

my $parked = attempts_of('/status/503?retry_after=9');
is(scalar(@$parked), 3, 'Retry-After 9 s, retry_for 12 s: three attempts');
if (@$parked == 3)
{
	my $gap1 = $parked->[1]{received_at} - $parked->[0]{received_at};
	note(sprintf('Retry-After 9: first gap %.2f s', $gap1));
	cmp_ok($gap1, '>=', 8.9, 'the parked retry went after Retry-After');
}
like($rows{'?retry_after=9'} // '', qr/^f\|3\|1[23]\./, 'logged failed at the deadline');
is($node->safe_psql('postgres', 'SELECT count(*) FROM cocohooks.retry_queue'), '0',
	'nothing is left parked');

# --- the schedule: the cap grows with the time since the commit
# retry_max_backoff 1 s: the first retries wait at most 1 s, then the cap is
# a quarter of the time since the commit (jittered: 0.75 to 1 times it).
$node->safe_psql('postgres', "ALTER SYSTEM SET cocohooks.retry_max_backoff = '1s'");
$node->reload;
$node->safe_psql('postgres', qq{
	CREATE TABLE s (id int PRIMARY KEY);
	SELECT cocohooks.register_hook('s', 'post_save', '$recv->{url}/status/503?schedule',
		retry_for => '30 s');
});
api_sql($node, 'INSERT INTO s VALUES (1)');
ok(wait_deliveries($node, '60 s'), 'the schedule hook finished');
my $sched = attempts_of('/status/503?schedule');
my $t0 = @$sched ? $sched->[0]{received_at} : 0;
my @gaps = map { [ $sched->[$_ - 1]{received_at} - $t0, $sched->[$_]{received_at} - $sched->[$_ - 1]{received_at} ] }
  1 .. $#$sched;
note('schedule, (time since the first attempt, gap): '
	  . join(' ', map { sprintf('(%.1f, %.2f)', @$_) } @gaps));
my @too_long = grep { $_->[1] > ($_->[0] / 4 > 1 ? $_->[0] / 4 : 1) + 0.6 } @gaps;
is(scalar(@too_long), 0, 'no retry waited longer than its cap, max(1 s, time since commit / 4)');
cmp_ok(scalar(grep { $_->[1] > 2.0 } @gaps), '>=', 2,
	'past a few seconds, retries wait longer than retry_max_backoff');
cmp_ok(scalar(@$sched), '<=', 20, 'thirty seconds of retrying cost at most 20 attempts (' . scalar(@$sched) . ')');
my @delays = (slurp_file($node->logfile, $log_offset) =~ /retrying in (\d+) ms\. URL: \S+\?schedule/g);
cmp_ok((sort { $b <=> $a } @delays)[0] // 0, '>', 1000, 'the server log shows delays past retry_max_backoff');
cmp_ok((sort { $b <=> $a } @delays)[0] // 0, '<=', 7500, 'and none past a quarter of retry_for');

$node->stop;
done_testing();
