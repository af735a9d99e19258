# A full queue never blocks or fails a write: overflow is counted as dropped.
# In memory mode (in wal mode nothing is dropped: test/t/160_wal_durability.pl).
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
# a small queue; few deliveries in flight, so the queue backs up quickly
# and what is left drains in a few rounds of 3 s
my $node = new_node('queue_full', conf => qq{
cocohooks.durability = memory
cocohooks.queue_size = '64kB'
cocohooks.max_concurrent_deliveries = 64
cocohooks.max_host_connections = 64
});
$node->start;
create_extension($node);

$node->safe_psql('postgres', qq{
	CREATE TABLE q (id int PRIMARY KEY, v text);
	SELECT cocohooks.register_hook('q', 'post_save', '$recv->{url}/slow/3000');
});
my $before = stats($node);
is($before->{queue_bytes_total}, 65536, 'queue is 64kB');

my $log_offset = -s $node->logfile;
my $sql = "SET cocohooks.api_session = on;\n"
  . join('', map { "INSERT INTO q VALUES ($_, 'burst');\n" } 1 .. 5000);
my $t0 = time();
my ($ret, $out, $err) = $node->psql('postgres', $sql);
my $took = time() - $t0;
is($ret, 0, '5000 single-row API-tagged inserts all succeed') or diag($err);
is($err, '', 'no error or warning for the writes');
note(sprintf('5000 single-row inserts with a backed-up queue: %.2f s', $took));
is($node->safe_psql('postgres', 'SELECT count(*) FROM q'), '5000', '5000 rows stored');

my $mid = stats($node);
my $queued = $mid->{queued} - $before->{queued};
my $dropped = $mid->{dropped} - $before->{dropped};
note("after the burst: queued $queued, dropped $dropped, in flight $mid->{in_flight}, "
	  . "queue bytes used $mid->{queue_bytes_used}");
cmp_ok($dropped, '>', 0, 'some events were dropped');
is($queued + $dropped, 5000, 'queued + dropped = 5000');
ok($node->log_contains(qr/cocohooks dropped \d+ events because its queue was full/, $log_offset),
	'server log reports the dropped events');

$t0 = time();
ok(wait_deliveries($node, '90 s'), 'the queued events are eventually all finished');
note(sprintf('queued events drained in %.2f s', time() - $t0));
my $after = stats($node);
is($after->{dropped} - $before->{dropped}, $dropped, 'nothing more dropped');
is(($after->{delivered} - $before->{delivered}) + ($after->{failed} - $before->{failed}),
	$queued, 'every queued event finished (delivered + failed = queued)');
is($after->{failed} - $before->{failed}, 0, 'none of them failed');
my $recs = records($recv);
is(scalar(@$recs), $queued, 'the receiver got exactly the queued events');
is($after->{queue_bytes_used}, 0, 'queue empty');

# the queue works normally afterwards
$node->safe_psql('postgres', qq{
	CREATE TABLE q2 (id int PRIMARY KEY);
	SELECT cocohooks.register_hook('q2', 'post_save', '$recv->{url}/q2');
});
api_sql($node, 'INSERT INTO q2 VALUES (1)');
ok(wait_deliveries($node), 'later event finished');
is(scalar(@{ records($recv, sub { $_[0]{path} eq '/q2' }) }), 1, 'and delivered');

$node->stop;
done_testing();
