# A hook paced slower than its events come (issue 22): its line in worker
# memory has a bound of its own, and the deliveries past it are parked in
# cocohooks.retry_queue until about their turn, so that the hook holds back
# no other hook (before, its line filled the bound on all lines and the
# worker took no new event for any hook).  Nothing is dropped, each event
# arrives once, document order holds, and raising the pace drains the
# parked ones at once.  The same for a hook paced by max_concurrent alone
# with a slow receiver.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use FindBin;
use lib "$FindBin::RealBin/../lib";
use CocoHooksTest;

# 64 deliveries at once: at most 256 wait for their hooks' pace in memory,
# 64 in one hook's line
my $recv = start_receiver();
my $node = new_node('pace_overflow',
	conf => "cocohooks.max_concurrent_deliveries = 64\n"
	  . "cocohooks.log_deliveries = 'all'\n");
$node->start;
create_extension($node);

sub on_path
{
	my ($path) = @_;
	return records($recv, sub { $_[0]{path} eq $path });
}

sub count_sql
{
	my ($sql) = @_;
	return $node->safe_psql('postgres', $sql);
}

# --- max_per_second => 2 beside an unpaced hook, 3,000 events ---------------
# 500 documents, each inserted then updated 5 times: 6 events each
my ($hpaced, $hfree) = split /\n/, $node->safe_psql('postgres', qq{
	CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL);
	SELECT cocohooks.register_hook('items', 'post_save', '$recv->{url}/paced',
		max_per_second => 2, ordering => 'document');
	SELECT cocohooks.register_hook('items', 'post_save', '$recv->{url}/free');
});
my $started = time();
api_sql($node, q{
	INSERT INTO items SELECT g, 0 FROM generate_series(1, 500) g;
	DO $$
	BEGIN
		FOR i IN 1..5 LOOP
			UPDATE items SET v = i;
			COMMIT;
		END LOOP;
	END $$;
});
my $wrote = time() - $started;
my $free = wait_records($recv, 3000, 30, sub { $_[0]{path} eq '/free' });
my $free_took = time() - $started;
my $paced_then = scalar(@{ on_path('/paced') });
is(scalar(@$free), 3000, 'the unpaced hook\'s 3,000 events arrived');
cmp_ok($free_took, '<', 15, 'promptly');
cmp_ok($paced_then, '<', 40, 'while the paced one went at its pace');
my $parked = count_sql("SELECT count(*) FROM cocohooks.retry_queue WHERE hook_id = $hpaced");
my $worker = worker_pid($node);
diag(sprintf('3,000 events written in %.2f s; the unpaced hook had them all %.2f s after '
	  . 'the first write, the paced one %d by then; %d of its deliveries parked; '
	  . 'worker VmHWM %s kB',
	$wrote, $free_took, $paced_then, $parked,
	proc_status_kb($worker, 'VmHWM') // '?'));
cmp_ok($parked, '>', 2000, 'the paced hook\'s overflow is parked in cocohooks.retry_queue');
is(count_sql('SELECT count(*) FROM cocohooks.retry_queue WHERE hook_id <> ' . $hpaced),
	'0', 'only its');
is(count_sql("SELECT count(*) FROM cocohooks.retry_queue WHERE hook_id = $hpaced AND attempts <> 0"),
	'0', 'none counted as attempted');

# a little later it still went at its pace, and parked rows come and go
sleep(3);
my $paced_later = scalar(@{ on_path('/paced') });
my $t = [ sort { $a <=> $b } map { $_->{received_at} } @{ on_path('/paced') } ];
my $rate = @$t > 1 ? ($#$t) / ($t->[-1] - $t->[0]) : 0;
diag(sprintf('paced hook: %d arrivals, %.2f/s', $paced_later, $rate));
cmp_ok($rate, '<=', 2.5, 'at 2/s at most');

# raising its pace drains the parked deliveries at once
$started = time();
$node->safe_psql('postgres', "UPDATE cocohooks.hooks SET max_per_second = 1000 WHERE id = $hpaced");
my $paced = wait_records($recv, 3000, 40, sub { $_[0]{path} eq '/paced' });
my $drain_took = time() - $started;
diag(sprintf('pace raised to 1000/s: all 3,000 arrived %.2f s later', $drain_took));
is(scalar(@$paced), 3000, 'every event of the paced hook arrived');
is(scalar(keys %{ by_webhook_id($paced) }), 3000, 'each once (3,000 webhook-ids)');
ok(wait_deliveries($node, '30 s'), 'they finished, parked ones included');
is(count_sql('SELECT count(*) FROM cocohooks.retry_queue'), '0', 'nothing is left parked');

my (%last, %got);
my $back = 0;
for my $r (sort { $a->{received_at} <=> $b->{received_at} } @$paced)
{
	my $b = body_of($r);
	my ($doc, $v) = ($b->{document_id}, $b->{document}{v});
	$back++ if defined $last{$doc} && $v < $last{$doc};
	$last{$doc} = $v;
	$got{$doc}++;
}
is($back, 0, 'no document went back in its history');
is(scalar(grep { $got{$_} == 6 } keys %got), 500, 'each of the 500 documents got its 6 versions');
is(count_sql("SELECT count(*) FROM cocohooks.deliveries WHERE NOT success"), '0', 'none failed');
is(count_sql("SELECT count(*) FROM cocohooks.deliveries WHERE hook_id = $hpaced AND attempts <> 1"),
	'0', 'each was attempted once');

# --- max_concurrent => 1 and a receiver taking 50 ms: 600 events -------------
my ($hslow) = split /\n/, $node->safe_psql('postgres', qq{
	CREATE TABLE notes (id int PRIMARY KEY);
	SELECT cocohooks.register_hook('notes', 'post_save', '$recv->{url}/slow/50',
		max_concurrent => 1, ordering => 'none');
	SELECT cocohooks.register_hook('notes', 'post_save', '$recv->{url}/notes');
});
$started = time();
api_sql($node, 'INSERT INTO notes SELECT generate_series(1, 600)');
my $notes = wait_records($recv, 600, 20, sub { $_[0]{path} eq '/notes' });
my $notes_took = time() - $started;
my $slow_then = scalar(@{ on_path('/slow/50') });
$parked = count_sql("SELECT count(*) FROM cocohooks.retry_queue WHERE hook_id = $hslow");
diag(sprintf('max_concurrent 1: the unpaced hook had its 600 events in %.2f s, the paced one %d; '
	  . '%d of its deliveries parked', $notes_took, $slow_then, $parked));
is(scalar(@$notes), 600, 'beside max_concurrent => 1, the other hook\'s 600 events arrived');
cmp_ok($slow_then, '<', 600, 'before the paced hook had all of its');
cmp_ok($parked, '>', 0, 'whose overflow was parked');
$node->safe_psql('postgres', "UPDATE cocohooks.hooks SET max_concurrent = NULL WHERE id = $hslow");
my $slow = wait_records($recv, 600, 30, sub { $_[0]{path} eq '/slow/50' });
is(scalar(keys %{ by_webhook_id($slow) }), 600, 'its pace lifted, all 600 arrived');
is(scalar(@$slow), 600, 'each once');
ok(wait_deliveries($node, '30 s'), 'they finished');
is(count_sql("SELECT count(*) FROM cocohooks.deliveries WHERE NOT success"), '0', 'none failed');

$node->stop;
done_testing();
