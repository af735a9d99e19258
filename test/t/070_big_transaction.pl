# One transaction writing 1,000,000 hooked rows: bounded backend memory,
# every event accounted for.  In memory mode, which drops what does not
# fit the queue.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use FindBin;
use lib "$FindBin::RealBin/../lib";
use CocoHooksTest;

my $rows = 1_000_000;
my $recv = start_receiver();
my $node = new_node('big', conf => qq{
cocohooks.durability = memory
cocohooks.queue_size = '1MB'
shared_buffers = '16MB'
work_mem = '4MB'
});
$node->start;
create_extension($node);

$node->safe_psql('postgres', qq{
	CREATE TABLE big (id int PRIMARY KEY, v text);
	SELECT cocohooks.register_hook('big', 'post_save', '$recv->{url}/big');
});
my $before = stats($node);

my $s = $node->background_psql('postgres', on_error_stop => 0, timeout => 600);
my $pid = $s->query_safe('SELECT pg_backend_pid()');
chomp $pid;
like($pid, qr/^\d+$/, 'backend pid');
my $hwm_start = vm_hwm_kb($pid);
$s->query_safe('SET cocohooks.api_session = on');
my $t0 = time();
my ($out, $failed) = $s->query(
	"BEGIN; INSERT INTO big SELECT g, 'row ' || g FROM generate_series(1, $rows) g; COMMIT;");
my $took = time() - $t0;
is($failed, 0, "one transaction of $rows API-tagged inserts succeeds")
  or diag($s->{stderr});
note(sprintf("$rows-row transaction: %.1f s", $took));
my $hwm = vm_hwm_kb($pid);
ok(defined $hwm, 'VmHWM read from /proc');
note(sprintf('backend VmHWM: %.1f MB before, %.1f MB after the transaction',
		($hwm_start // 0) / 1024, ($hwm // 0) / 1024));
cmp_ok($hwm // 1e9, '<', 300 * 1024, 'backend peak memory below 300 MB');
$s->quit;

is($node->safe_psql('postgres', 'SELECT count(*) FROM big'), "$rows", 'all rows stored');

ok(wait_deliveries($node, '120 s'), 'all queued events finished');
my $after = stats($node);
my %d = map { $_ => $after->{$_} - $before->{$_} } qw(queued delivered failed dropped);
note("events: queued $d{queued}, delivered $d{delivered}, failed $d{failed}, dropped $d{dropped}");
is($d{delivered} + $d{failed} + $d{dropped}, $rows,
	'delivered + failed + dropped accounts for every event');
is($d{queued} + $d{dropped}, $rows, 'queued + dropped = rows');
cmp_ok($d{delivered}, '>', 0, 'some events were delivered');
is(scalar(@{ records($recv, sub { $_[0]{path} eq '/big' }) }), $d{delivered} + $d{failed},
	'the receiver saw each finished event once');

# --- a savepoint rolled back after the messages spilled to a file
$node->safe_psql('postgres', qq{
	CREATE TABLE sp (id int PRIMARY KEY);
	SELECT cocohooks.register_hook('sp', 'post_save', '$recv->{url}/sp');
});
$before = stats($node);
api_sql($node, q{
	SET work_mem = '64kB';
	BEGIN;
	INSERT INTO sp SELECT generate_series(1, 2000);
	SAVEPOINT a;
	INSERT INTO sp SELECT generate_series(2001, 4000);
	ROLLBACK TO SAVEPOINT a;
	INSERT INTO sp SELECT generate_series(4001, 4010);
	SAVEPOINT b;
	INSERT INTO sp SELECT generate_series(4011, 4020);
	RELEASE SAVEPOINT b;
	COMMIT;
});
ok(wait_deliveries($node), 'spilled transaction delivered');
$after = stats($node);
is($after->{dropped} - $before->{dropped}, 0, 'nothing dropped (the queue had room)');
my @ids = sort { $a <=> $b } map { body_of($_)->{document_id} }
  @{ records($recv, sub { $_[0]{path} eq '/sp' }) };
is_deeply(\@ids, [ 1 .. 2000, 4001 .. 4020 ],
	'exactly the rows outside the rolled-back savepoint were delivered, once each');

$node->stop;
done_testing();

sub vm_hwm_kb { return proc_status_kb($_[0], 'VmHWM'); }
