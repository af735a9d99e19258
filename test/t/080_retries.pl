# Failed deliveries are retried up to max_retries times with growing
# back-off, with the same webhook-id; a retry can succeed.
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
my $node = new_node('retries');
$node->start;
create_extension($node);

# --- HTTP 503 every time, max_retries = 2: three attempts, then failure
my $hook = $node->safe_psql('postgres', qq{
	CREATE TABLE r (id int PRIMARY KEY);
	SELECT cocohooks.register_hook('r', 'post_save', '$recv->{url}/status/503', max_retries => 2);
});
my $before = stats($node);
api_sql($node, 'INSERT INTO r VALUES (1)');
ok(wait_deliveries($node, '120 s'), 'retried delivery finished');
my $recs = records($recv, sub { $_[0]{path} eq '/status/503' });
is(scalar(@$recs), 3, 'three attempts (1 + max_retries)');
my %wid = map { $_->{headers}{'webhook-id'} => 1 } @$recs;
is(scalar(keys %wid), 1, 'the same webhook-id on every attempt');
my %bodies = map { $_->{body} => 1 } @$recs;
is(scalar(keys %bodies), 1, 'the same body on every attempt');
if (@$recs == 3)
{
	my $gap1 = $recs->[1]{received_at} - $recs->[0]{received_at};
	my $gap2 = $recs->[2]{received_at} - $recs->[1]{received_at};
	note(sprintf('retry gaps: %.2f s, %.2f s', $gap1, $gap2));
	cmp_ok($gap2, '>', $gap1, 'back-off grows');
}
else
{
	fail('back-off grows (needs three attempts)');
}
is( $node->safe_psql('postgres',
		"SELECT success, status_code, attempts, error IS NOT NULL FROM cocohooks.deliveries WHERE hook_id = $hook"),
	'f|503|3|t', 'one log row: failed, last status 503, 3 attempts');
my $after = stats($node);
is($after->{retried} - $before->{retried}, 2, 'stats.retried increased by 2');
is($after->{failed} - $before->{failed}, 1, 'stats.failed increased by 1 (per event and hook)');

# --- a receiver that comes up late: a retry succeeds
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $hook2 = $node->safe_psql('postgres', qq{
	CREATE TABLE late (id int PRIMARY KEY);
	SELECT cocohooks.register_hook('late', 'post_save', 'http://127.0.0.1:$port/late', max_retries => 10);
});
$before = stats($node);
api_sql($node, 'INSERT INTO late VALUES (1)');
ok(wait_until('a failed first attempt', 15,
		sub { stats($node)->{retried} > $before->{retried} }),
	'first attempt failed (connection refused) and a retry is scheduled');
my $late = start_receiver(port => $port);
ok(wait_deliveries($node, '120 s'), 'delivery finished once the receiver is up');
my $late_recs = records($late);
is(scalar(@$late_recs), 1, 'the late receiver got the event once');
$after = stats($node);
is($after->{delivered} - $before->{delivered}, 1, 'counted as delivered');
is($after->{failed} - $before->{failed}, 0, 'not counted as failed');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM cocohooks.deliveries WHERE hook_id = $hook2 AND NOT success"),
	'0', 'no failure row for a delivery that succeeded on retry');

# --- more failures than may wait to retry in memory: the rest are parked
# One delivery at a time, so at most 16 may wait to retry in memory; 60
# events that fail in a millisecond or two come faster than the first retry
# is due (1 s).  Those past the 16 are parked in cocohooks.retry_queue
# (0.2 failed them at once): every one gets its retry.
# A line per failed attempt (log_failures_every = 0; by default a failing
# hook's attempts after its first are only counted, test/t/365), so that
# the server log shows each parked one.
$node->safe_psql('postgres', 'ALTER SYSTEM SET cocohooks.max_concurrent_deliveries = 1');
$node->safe_psql('postgres', 'ALTER SYSTEM SET cocohooks.log_failures_every = 0');
$node->reload;
my $hook3 = $node->safe_psql('postgres', qq{
	CREATE TABLE capped (id int PRIMARY KEY);
	SELECT cocohooks.register_hook('capped', 'post_save', '$recv->{url}/status/503?capped',
		max_retries => 1, ordering => 'none');
});
$before = stats($node);
api_sql($node, 'INSERT INTO capped SELECT g FROM generate_series(1, 60) g');
ok(wait_deliveries($node, '120 s'), 'every capped event finished');
my %rows = map { split /\|/, $_, 2 } split /\n/, $node->safe_psql('postgres', qq{
	SELECT attempts, count(*) || ',' || count(payload)
	FROM cocohooks.deliveries WHERE hook_id = $hook3 AND NOT success GROUP BY attempts});
note('capped: attempts => rows, with payload: '
	  . join('; ', map { "$_ => $rows{$_}" } sort keys %rows));
is(join(' ', sort keys %rows), '2', 'every one failed after 2 attempts (1 + max_retries)');
my ($twice, $twice_payload) = split /,/, $rows{2} // '0,0';
is($twice, 60, 'every event has its failure row');
is($twice_payload, 60, 'every failure row has the payload, for redeliver()');
$after = stats($node);
is($after->{failed} - $before->{failed}, 60, 'stats.failed counts all 60');
is($after->{dropped} - $before->{dropped}, 0, 'nothing dropped');
my $capped_recs = records($recv, sub { $_[0]{path} eq '/status/503?capped' });
is(scalar(@$capped_recs), 120, 'the receiver saw every attempt: 2 of each');
ok($node->log_contains(qr/Attempt 1 of 2, parked, retrying in \d+ ms\./),
	'the server log says which were parked');
is($node->safe_psql('postgres', 'SELECT count(*) FROM cocohooks.retry_queue'), '0',
	'nothing is left parked');
$node->safe_psql('postgres', 'ALTER SYSTEM RESET cocohooks.max_concurrent_deliveries');
$node->safe_psql('postgres', 'ALTER SYSTEM RESET cocohooks.log_failures_every');
$node->reload;

$node->stop;
done_testing();
