# A long receiver outage (issue 20): 100,000 events behind a receiver down
# for two minutes while the server writes 200 MB of other WAL are all
# delivered once it is back, the WAL the cocohooks slot keeps stays small
# whatever the outage length, and the worker's memory stays bounded; and
# one document failing thousands of times holds back only itself, not the
# other documents of its hook.
#
# The hook is ordered (the default) and its 100,000 documents are parked
# at once, more than the 65,536 documents whose parked rows the worker
# counts in memory (parked_retries.c): 20 documents first written after
# that bound was reached are updated 29 times each during the outage, and
# must arrive in order, as the table is asked about them.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use IO::Socket::INET;
use JSON::PP;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use CocoHooksTest;

my $EVENTS = 100_000;
my $STEPS = 100;                 # writes of 1,000 events and 2 MB of filler
my $HOT_STEP = 70;               # its first 20 rows are updated in the next steps
my $PARKED_DOCS_MAX = 65_536;    # as parked_retries.c
my $OUTAGE_S = 120;
my $WAL_KEPT_LIMIT = 64 * 1024 * 1024;

# retries every 10 s at most: 20 of them span the outage, and the drain
# after it starts within 10 s
my $node = new_node('outage', conf => "cocohooks.retry_max_backoff = 10000\n");
$node->start;
create_extension($node);
my $dboid = $node->safe_psql('postgres',
	"SELECT oid FROM pg_database WHERE datname = 'postgres'");

# The webhook-ids of the receiver's records for $path, counted without
# decoding 100,000 JSON lines: { id => requests }.
sub ids_of
{
	my ($recv, $path) = @_;
	my %ids;
	open my $fh, '<', $recv->{log} or return \%ids;
	while (my $line = <$fh>)
	{
		next unless $line =~ /\n\z/ && $line =~ /"path": "\Q$path\E"/;
		$ids{$1}++ if $line =~ /"webhook-id": "([^"]+)"/;
	}
	close $fh;
	return \%ids;
}

sub failed_rows
{
	my ($hook) = @_;
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM cocohooks.deliveries WHERE hook_id = $hook AND NOT success");
}

# --- 100,000 events behind a receiver down for two minutes -----------------
my $recv = start_receiver();
$node->safe_psql('postgres',
	'CREATE TABLE events (id int PRIMARY KEY, v text); CREATE TABLE filler (v text)');
my $hook = $node->safe_psql('postgres',
	"SELECT cocohooks.register_hook('events', 'post_save', '$recv->{url}/events', max_retries => 20)");
my $pid = worker_pid($node);
my $anon0 = proc_status_kb($pid, 'RssAnon');

# The receiver's port stays bound, without listening, while it is down:
# connections are refused, and no other process of a busy machine takes
# the port in two minutes (a receiver could not come back on it).
stop_receiver($recv);
my $hold = IO::Socket::INET->new(
	LocalAddr => '127.0.0.1',
	LocalPort => $recv->{port},
	Proto => 'tcp',
	ReuseAddr => 1) or die "could not hold port $recv->{port}: $!";
my $t0 = time();
my $lsn0 = $node->safe_psql('postgres', 'SELECT pg_current_wal_lsn()');
my (@kept, @retained, @anon, $max_parked);
$max_parked = 0;

# one sample: the WAL the slot keeps, as pg_replication_slots and
# cocohooks.stats see it, and the worker's private memory
my $sample = sub {
	my ($lag, $ret, $parked) = split /\|/, $node->safe_psql('postgres', qq{
		SELECT (SELECT pg_current_wal_lsn() - restart_lsn FROM pg_replication_slots
				 WHERE slot_name = 'cocohooks_$dboid'),
			   wal_retained_bytes, parked
		  FROM cocohooks.stats});
	push @kept, $lag;
	push @retained, $ret;
	$max_parked = $parked if $parked > $max_parked;
	push @anon, [ time() - $t0, proc_status_kb($pid, 'RssAnon') // 0 ];
};

# 100 steps over 100 s: 1,000 events (one transaction) and 2,000 rows of
# 1 kB of filler (another), then a sample.  After step 70, 20 of the
# events of each step are updates of step 70's first 20 rows.
my $next_id = 1;
my $hot = $HOT_STEP * 1000;
for my $i (0 .. $STEPS - 1)
{
	my $new = $i > $HOT_STEP ? 980 : 1000;
	my $to = $next_id + $new - 1;
	my $sql = "INSERT INTO events SELECT g, '0' FROM generate_series($next_id, $to) g;\n";
	$sql .= "UPDATE events SET v = '$i' WHERE id BETWEEN $hot + 1 AND $hot + 20;\n"
	  if $i > $HOT_STEP;
	$next_id = $to + 1;
	if ($i == $HOT_STEP)
	{
		ok(wait_until('more documents parked than counted in memory', 90, sub {
					$node->safe_psql('postgres', 'SELECT parked FROM cocohooks.stats')
					  > $PARKED_DOCS_MAX + 500;
				}),
			'more documents are parked than the worker counts in memory');
	}
	api_sql($node, $sql
		  . "INSERT INTO filler SELECT repeat(md5(g::text), 32) FROM generate_series(1, 2000) g;");
	$sample->();
	my $wait = $t0 + ($i + 1) * ($OUTAGE_S - 20) / $STEPS - time();
	usleep(int($wait * 1e6)) if $wait > 0;
}
# the rest of the outage, a sample a second
for (1 .. 2 * $OUTAGE_S)
{
	last if time() - $t0 >= $OUTAGE_S;
	$sample->();
	usleep(1_000_000);
}
my $outage = time() - $t0;
my $wal_written = $node->safe_psql('postgres', "SELECT pg_current_wal_lsn() - '$lsn0'");
my ($max_kept) = sort { $b <=> $a } @kept;
my ($max_retained) = sort { $b <=> $a } @retained;
diag(sprintf('outage %.0f s, %d MB of WAL written; WAL kept by the slot: at most %.1f MB '
	  . '(stats: %.1f MB), %d samples; at most %d deliveries parked',
	  $outage, $wal_written / 1048576, $max_kept / 1048576, $max_retained / 1048576,
	  scalar @kept, $max_parked));
ok($outage >= $OUTAGE_S, 'the receiver was down for two minutes');
ok($wal_written >= 200 * 1024 * 1024, 'the server wrote 200 MB of WAL or more meanwhile');
cmp_ok($max_kept, '<', $WAL_KEPT_LIMIT,
	'the WAL kept by the slot stayed under 64 MB (pg_replication_slots)');
cmp_ok($max_retained, '<', $WAL_KEPT_LIMIT,
	'... and as cocohooks.stats wal_retained_bytes says');

# memory: the peak of the second half of the outage is that of the first
# (it does not grow with the outage), and under a fixed bound
my @first = map { $_->[1] } grep { $_->[0] < $OUTAGE_S / 2 } @anon;
my @second = map { $_->[1] } grep { $_->[0] >= $OUTAGE_S / 2 } @anon;
my ($peak1) = sort { $b <=> $a } @first;
my ($peak2) = sort { $b <=> $a } @second;
diag(sprintf('worker RssAnon: %.1f MB idle, peak %.1f MB in the first minute, %.1f MB in the second',
	  $anon0 / 1024, $peak1 / 1024, $peak2 / 1024));
cmp_ok($peak2, '<=', $peak1 + 16 * 1024,
	'the worker\'s memory does not grow with the outage');
cmp_ok($peak1, '<', 256 * 1024, 'the worker\'s private memory stays under 256 MB');

close($hold);
$recv = restart_receiver($recv);
my $t1 = time();
is($node->safe_psql('postgres', "SELECT cocohooks.wait_for_deliveries('300 s')"), 't',
	'every delivery finished once the receiver was back');
diag(sprintf('drained %.0f s after the receiver came back', time() - $t1));
my $ids = ids_of($recv, '/events');
is(scalar keys %$ids, $EVENTS, 'all 100,000 events arrived (distinct webhook-ids)');
is(failed_rows($hook), '0', 'none failed');
is($node->safe_psql('postgres', 'SELECT parked FROM cocohooks.stats'), '0',
	'nothing is left parked');
{
	my (%last, %versions);
	my $back = 0;
	open my $fh, '<', $recv->{log} or die "cannot read $recv->{log}: $!";
	while (my $line = <$fh>)
	{
		next unless $line =~ /\n\z/ && $line =~ /"path": "\/events"/;
		# decode only what may be one of the 20 (an id of 70,001 to 70,020)
		next unless $line =~ /\\"id\\": 700[0-2]\d\b/;
		my $b = body_of(JSON::PP::decode_json($line));
		my ($doc, $v) = ($b->{document}{id}, $b->{document}{v});
		next unless $doc > $hot && $doc <= $hot + 20;
		$back++ if defined $last{$doc} && $v < $last{$doc};
		$last{$doc} = $v;
		$versions{"$doc/$v"} = 1;
	}
	close $fh;
	is(scalar keys %versions, 20 * ($STEPS - $HOT_STEP), 'the 20 documents updated after the bound: every version arrived');
	is($back, 0, '... in order');
}

# --- one document failing thousands of times holds back only itself --------
# An ordered hook whose receiver answers 503 to document 1 only (its rows
# say 'poison'): 3,000 updates of it, interleaved with 2,000 events of 200
# other documents.
my $doc_recv = start_receiver(fail_if => 'poison');
$node->safe_psql('postgres',
	"CREATE TABLE docs (id int PRIMARY KEY, v int, tag text);\n"
	  . "INSERT INTO docs SELECT g, 0, CASE g WHEN 1 THEN 'poison' ELSE 'fine' END FROM generate_series(1, 201) g");
my $doc_hook = $node->safe_psql('postgres',
	"SELECT cocohooks.register_hook('docs', 'post_save', '$doc_recv->{url}/docs', max_retries => 20)");
my $t2 = time();
api_sql($node, q{
	DO $$
	BEGIN
		FOR i IN 1..3000 LOOP
			UPDATE docs SET v = i WHERE id = 1;
			IF i % 3 = 0 THEN
				UPDATE docs SET v = i WHERE id = 2 + (i / 3) % 200;
			END IF;
			COMMIT;
		END LOOP;
	END $$;
});

# the other documents' events, in order per document
sub other_docs
{
	my (%last, %got);
	my $back = 0;
	for my $r (@{ records($doc_recv, sub { $_[0]{path} eq '/docs' }) })
	{
		my $b = body_of($r);
		my ($doc, $v) = ($b->{document}{id}, $b->{document}{v});
		next if $doc == 1;
		$back++ if defined $last{$doc} && $v < $last{$doc};
		$last{$doc} = $v;
		$got{"$doc/$v"} = 1;
	}
	return (scalar keys %got, $back);
}
ok(wait_until('the other documents\' 1,000 events', 120, sub { (other_docs())[0] >= 1000 }),
	'the other documents of the hook got all their events while document 1 failed');
note(sprintf('the other documents caught up %.1f s after the first write', time() - $t2));
is((other_docs())[1], 0, 'the other documents\' events arrived in order');
# its first delivery waits in memory until its delays pass 8 s, then its
# line is parked
ok(wait_until('document 1 parked', 60,
		sub { $node->safe_psql('postgres', 'SELECT parked FROM cocohooks.stats') > 0 }),
	'document 1\'s deliveries are parked');

$doc_recv = restart_receiver($doc_recv);
my $t3 = time();
is($node->safe_psql('postgres', "SELECT cocohooks.wait_for_deliveries('180 s')"), 't',
	'document 1: finished once the receiver accepts it');
diag(sprintf('document 1\'s 3,000 events: drained %.1f s after the receiver accepted them', time() - $t3));
my ($back, %got, $last) = (0);
for my $r (@{ records($doc_recv, sub { $_[0]{path} eq '/docs' }) })
{
	my $b = body_of($r);
	next unless $b->{document}{id} == 1;
	$back++ if defined $last && $b->{document}{v} < $last;
	$last = $b->{document}{v};
	$got{ $last } = 1;
}
is($back, 0, 'document 1 never went back in its history');
is(scalar keys %got, 3000, 'every one of document 1\'s 3,000 versions arrived');
is(failed_rows($doc_hook), '0', 'none of the hook\'s deliveries failed');

$node->stop;
done_testing();
