# Fault injection: a receiver that answers after 25 s never holds back
# another hook's receiver; its deliveries time out at the default 15 s and
# are logged as failures.  Retry-After is honoured, up to
# cocohooks.retry_max_backoff.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use List::Util qw(max min);
use Time::HiRes qw(time usleep);
use FindBin;
use lib "$FindBin::RealBin/../lib";
use CocoHooksTest;

my $slow = start_receiver();
my $fast = start_receiver();
# a line per failed attempt (by default a failing hook's attempts after its
# first are only counted, test/t/365): the log's lines of the timeouts are
# counted below
my $node = new_node('slow_receiver', conf => "cocohooks.log_failures_every = 0\n");
$node->start;
create_extension($node);

# two hooks on the same table and event: one slow, one fast
my $slow_hook = $node->safe_psql('postgres', qq{
	CREATE TABLE b (id int PRIMARY KEY, v text);
	SELECT cocohooks.register_hook('b', 'post_save', '$slow->{url}/slow/25000', max_retries => 0);
});
my $fast_hook = $node->safe_psql('postgres',
	"SELECT cocohooks.register_hook('b', 'post_save', '$fast->{url}/b')");
my $log_offset = -s $node->logfile;
my $before = stats($node);

# Writes rows $lo..$hi in one transaction; checks the fast hook got them
# all within 2 s of the commit.
sub fast_batch
{
	my ($lo, $hi, $what) = @_;
	my $n = $hi - $lo + 1;
	my $filter = sub { my $id = body_of($_[0])->{document_id}; $id >= $lo && $id <= $hi };
	my $t0 = time();
	api_sql($node, "INSERT INTO b SELECT g, 'x' FROM generate_series($lo, $hi) g");
	my $recs = wait_records($fast, $n, 10, $filter);
	is(scalar(@$recs), $n, "$what: fast hook got all $n events");
	my $latency = @$recs ? max(map { $_->{received_at} } @$recs) - $t0 : 99;
	note(sprintf('%s: last of %d fast events received %.3f s after the write began', $what, $n, $latency));
	cmp_ok($latency, '<', 2, "$what: all fast events within 2 s of commit");
	is(scalar(keys %{ by_webhook_id($recs) }), $n, "$what: $n distinct webhook-ids");
	return;
}

fast_batch(1, 20, 'first batch');
ok(wait_until('20 slow requests received', 10, sub { @{ records($slow) } >= 20 }),
	'the slow receiver holds 20 requests');
cmp_ok(stats($node)->{in_flight}, '>=', 20, 'slow deliveries in flight');

# --- Retry-After, while the slow requests hang
my $ra_hook = $node->safe_psql('postgres', qq{
	CREATE TABLE f (id int PRIMARY KEY);
	SELECT cocohooks.register_hook('f', 'post_save', '$fast->{url}/status/503?retry_after=3', max_retries => 1);
});

# Two attempts of document $id to the Retry-After hook: the gap between them.
sub retry_after_gap
{
	my ($id) = @_;
	api_sql($node, "INSERT INTO f VALUES ($id)");
	my $filter = sub { $_[0]{path} =~ m{^/status/503} && body_of($_[0])->{document_id} eq "$id" };
	my $recs = wait_records($fast, 2, 15, $filter);
	usleep(300_000);
	$recs = records($fast, $filter);
	is(scalar(@$recs), 2, "document $id: two attempts (max_retries 1)");
	is(scalar(keys %{ by_webhook_id($recs) }), 1, "document $id: the same webhook-id");
	return @$recs == 2 ? $recs->[1]{received_at} - $recs->[0]{received_at} : -1;
}

my $gap = retry_after_gap(1);
note(sprintf('Retry-After: 3 with retry_max_backoff 60s: retry %.3f s after the first attempt', $gap));
cmp_ok($gap, '>=', 2.9, 'retry waits at least Retry-After (3 s)');
cmp_ok($gap, '<', 4.5, 'and not much longer');

$node->safe_psql('postgres', q{
	ALTER SYSTEM SET cocohooks.retry_max_backoff = '2s';
	SELECT pg_reload_conf();
});
usleep(500_000);
$gap = retry_after_gap(2);
note(sprintf('Retry-After: 3 with retry_max_backoff 2s: retry %.3f s after the first attempt', $gap));
cmp_ok($gap, '>=', 1.9, 'capped retry waits about 2 s');
cmp_ok($gap, '<', 2.6, 'retry_max_backoff caps Retry-After');

# a second fast batch, still while the first slow requests hang
fast_batch(101, 110, 'second batch');

# --- the slow deliveries time out at 15 s
ok( wait_until('30 slow failures logged', 30, sub {
		$node->safe_psql('postgres',
			"SELECT count(*) FROM cocohooks.deliveries WHERE hook_id = $slow_hook") == 30 }),
	'the 30 slow deliveries failed and were logged');
my $rows = $node->safe_psql('postgres', qq{
	SELECT min(duration_ms), max(duration_ms),
	       count(*) FILTER (WHERE NOT success AND status_code IS NULL AND attempts = 1
	                          AND error ~* 'timed? ?out'),
	       min(error)
	FROM cocohooks.deliveries WHERE hook_id = $slow_hook});
my ($dmin, $dmax, $nok, $err) = split /\|/, $rows;
note("slow deliveries: duration_ms min $dmin, max $dmax; error: $err");
cmp_ok($dmin, '>=', 14500, 'timed out no sooner than ~15 s');
cmp_ok($dmax, '<=', 16500, 'timed out no later than ~15 s');
is($nok, 30, 'each: failed, status_code NULL, 1 attempt, error mentions a timeout');

my $log = slurp_file($node->logfile, $log_offset);
my $nlines = () = $log =~ /cocohooks could not deliver post_save event of collection "b" to hook $slow_hook: [^\n]*(?i:timed? ?out)/g;
is($nlines, 30, 'server log: one failure line per slow delivery');

my $slow_recs = records($slow);
is(scalar(@$slow_recs), 30, 'the slow receiver got 30 requests (no retries)');
is(scalar(keys %{ by_webhook_id($slow_recs) }), 30, '30 distinct webhook-ids');

ok(wait_deliveries($node), 'everything finished');
my $fast_recs = records($fast, sub { $_[0]{path} eq '/b' });
is(scalar(@$fast_recs), 30, 'fast receiver: 30 requests on /b');
is(scalar(keys %{ by_webhook_id($fast_recs) }), 30, 'fast receiver: 30 distinct webhook-ids');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM cocohooks.deliveries WHERE hook_id = $fast_hook"),
	'0', 'no failure rows for the fast hook');
my $after = stats($node);
is($after->{delivered} - $before->{delivered}, 30, 'stats.delivered + 30 (fast hook)');
is($after->{failed} - $before->{failed}, 32, 'stats.failed + 32 (30 slow, 2 Retry-After)');
is($after->{retried} - $before->{retried}, 2, 'stats.retried + 2');
is($after->{dropped} - $before->{dropped}, 0, 'stats.dropped + 0');

$node->stop;
done_testing();
