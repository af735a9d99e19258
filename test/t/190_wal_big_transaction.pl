# cocohooks.durability = wal and big transactions: a transaction whose
# events outgrow work_mem keeps no copies (no temporary file, nothing
# pushed at commit); the worker reads all of them from the WAL, in batches,
# so neither the backend nor the worker holds a million-row transaction's
# events in memory, and nothing is dropped.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use FindBin;
use lib "$FindBin::RealBin/../lib";
use CocoHooksTest;

my $recv = start_receiver();
my $node = new_node('walbig', conf => qq{
cocohooks.durability = wal
cocohooks.queue_size = '1MB'
cocohooks.max_concurrent_deliveries = 32
shared_buffers = '32MB'
work_mem = '64kB'
max_wal_size = '4GB'
log_temp_files = 0
});
$node->start;
create_extension($node);

$node->safe_psql('postgres', qq{
	CREATE TABLE sp (id int PRIMARY KEY);
	SELECT cocohooks.register_hook('sp', 'post_save', '$recv->{url}/sp');
	CREATE TABLE big (id int PRIMARY KEY, v text);
	SELECT cocohooks.register_hook('big', 'post_save', '$recv->{url}/slow/200');
});

# --- past work_mem, savepoints still decide which events are delivered
my $before = stats($node);
my $log_offset = -s $node->logfile;
api_sql($node, q{
	BEGIN;
	INSERT INTO sp SELECT generate_series(1, 3000);
	SAVEPOINT a;
	INSERT INTO sp SELECT generate_series(3001, 6000);
	ROLLBACK TO SAVEPOINT a;
	INSERT INTO sp SELECT generate_series(6001, 6010);
	SAVEPOINT b;
	INSERT INTO sp SELECT generate_series(6011, 6020);
	RELEASE SAVEPOINT b;
	COMMIT;
});
ok(wait_deliveries($node, '120 s'), 'the transaction past work_mem was delivered');
my $after = stats($node);
is($after->{dropped} - $before->{dropped}, 0, 'nothing dropped');
is($after->{delivered} - $before->{delivered}, 3020, '3,020 events delivered');
unlike(slurp_file($node->logfile, $log_offset), qr/temporary file/,
	'no temporary file was written for the events (the WAL has them)');
my $recs = records($recv, sub { $_[0]{path} eq '/sp' });
my @ids = sort { $a <=> $b } map { body_of($_)->{document_id} } @$recs;
is_deeply(\@ids, [ 1 .. 3000, 6001 .. 6020 ],
	'exactly the rows outside the rolled-back savepoint, once each');
is(scalar(grep { $_->{headers}{'webhook-id'} !~ /^wal_[0-9A-F]{16}_\d+$/ } @$recs), 0,
	'each named after its WAL position');

# --- a 1,000,000-row transaction behind a slow receiver
my $rows = 1_000_000;
my $wpid = worker_pid($node);
my $worker_idle = rss_anon_kb($wpid);
my $s = $node->background_psql('postgres', on_error_stop => 0, timeout => 600);
my $pid = $s->query_safe('SELECT pg_backend_pid()');
chomp $pid;
$s->query_safe('SET cocohooks.api_session = on');
my $t0 = time();
my ($out, $failed) = $s->query(
	"INSERT INTO big SELECT g, 'row ' || g FROM generate_series(1, $rows) g");
is($failed, 0, "one transaction of $rows API-tagged inserts succeeds")
  or diag($s->{stderr});
note(sprintf("$rows-row transaction: %.1f s", time() - $t0));
my $hwm = vm_hwm_kb($pid);
note(sprintf('backend VmHWM after it: %.1f MB', ($hwm // 0) / 1024));
cmp_ok($hwm // 1e9, '<', 200 * 1024, 'backend peak memory below 200 MB');
$s->quit;

# the worker works through the backlog; sample its memory meanwhile
my $delivered0 = stats($node)->{delivered};
my $peak = 0;
my $t1 = time();
while (time() - $t1 < 6)
{
	my $kb = rss_anon_kb($wpid) // 0;
	$peak = $kb if $kb > $peak;
	usleep(200_000);
}
my $mid = stats($node);
note(sprintf('worker RssAnon: %.1f MB idle, %.1f MB at most with %d events outstanding',
		($worker_idle // 0) / 1024, $peak / 1024,
		$rows - ($mid->{delivered} - $delivered0)));
cmp_ok($mid->{delivered} - $delivered0, '>', 0, 'deliveries go on');
cmp_ok($mid->{delivered} - $delivered0, '<', $rows / 2, 'most events are still outstanding');
cmp_ok($peak, '<', 64 * 1024,
	'the worker holds far less than the backlog (below 64 MB; the events alone are over 300 MB)');
is($mid->{dropped} - $after->{dropped}, 0, 'nothing dropped');
is(worker_pid($node), $wpid, 'the same worker ran throughout');

$node->stop('immediate');
done_testing();

sub rss_anon_kb { return proc_status_kb($_[0], 'RssAnon'); }
sub vm_hwm_kb { return proc_status_kb($_[0], 'VmHWM'); }
