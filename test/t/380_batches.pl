# Batched delivery (batch_size, batch_wait; docs/reference.md): a batch is
# one request whose body is a JSON array of its events' bodies, each with
# its own webhook_id, under one webhook-id of the batch, signed as one
# body.  Checked here: exact grouping (by size, in commit order, and by
# batch_wait), the items and ids, signatures verified by the Standard
# Webhooks reference library over the array, per-document order across
# batches, a failing batch retried as a batch (same webhook-id, same
# members), one that fails for good logged per event, alter_hook between
# batch sizes (batch_size 1 is the one-event body, unchanged), and a kill -9
# of the worker while a batch is in flight: after the restart the batch
# comes again with the same webhook-id and members (wal mode; memory mode:
# an orderly exit).  Also: a parked batch comes back as the same batch; an
# ordered hook's parked batch takes the one gathering behind it along; a
# 410 Gone fails every event and disables the hook; the pace counts a batch
# as one request; a backfill of a batched hook goes in batches.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MIME::Base64 qw(encode_base64);
use JSON::PP;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use CocoHooksTest;

my $recv = start_receiver();
my $secret = 'whsec_' . encode_base64(join('', map { chr(int(rand(256))) } 1 .. 32), '');
my $verifier = start_verifier($secret);

my $node = new_node('batches', conf => qq{
cocohooks.log_deliveries = 'all'
restart_after_crash = on
});
$node->start;
create_extension($node);

sub sql { return $node->safe_psql('postgres', $_[0]); }

sub register
{
	my ($table, $url, %opt) = @_;
	my $extra = join '', map { ", $_ => $opt{$_}" } sort keys %opt;
	return sql("SELECT cocohooks.register_hook('$table', 'post_save', '$url'$extra)");
}

# the requests to one path, oldest first
sub path_records
{
	my ($r, $path) = @_;
	return records($r, sub { $_[0]{path} eq $path });
}

sub items { return JSON::PP->new->decode($_[0]{body}); }

# "<document id>:<n>" of each item of a request
sub item_keys
{
	my ($rec) = @_;
	return join ',', map { "$_->{document_id}:$_->{document}{n}" } @{ items($rec) };
}

sub deliveries_finished
{
	is(sql("SELECT cocohooks.wait_for_deliveries('60 s')"), 't', $_[0]);
	return;
}

# ---------- exact grouping: 250 events of one transaction, batch_size 100
sql('CREATE TABLE g (id int PRIMARY KEY, n int)');
my $g = register('g', "$recv->{url}/g", batch_size => 100, batch_wait => "'2 s'",
	ordering => "'none'");
api_sql($node, 'INSERT INTO g SELECT i, i FROM generate_series(1, 250) i');
deliveries_finished('250 events delivered in batches');
# ordering 'none': the batches go concurrently, and may arrive in any order
my $greqs = [ sort { items($a)->[0]{document_id} <=> items($b)->[0]{document_id} }
	  @{ path_records($recv, '/g') } ];
is(join(',', map { scalar @{ items($_) } } @$greqs), '100,100,50',
	'three requests of 100, 100 and 50 events');
is(join(',', map { $_->{document_id} } map { @{ items($_) } } @$greqs),
	join(',', 1 .. 250), 'each batch a run of the events in commit order');
is(scalar(grep { ref(items($_)) ne 'ARRAY' } @$greqs), 0, 'each body is a JSON array');
my @gids = map { $_->{headers}{'webhook-id'} } @$greqs;
is(scalar(grep { !/\Abatch_\w+_${g}_(100|50)_[0-9a-f]{16}\z/ } @gids), 0,
	'one webhook-id per batch: batch_<first event id>_<hook>_<count>_<digest>');
is(scalar(keys %{ { map { $_ => 1 } @gids } }), 3, 'three distinct batch ids');
my @item_ids = map { $_->{webhook_id} } map { @{ items($_) } } @$greqs;
is(scalar(grep { !/\A\w+_$g\z/ } @item_ids), 0, "every item carries its event's own webhook-id");
is(scalar(keys %{ { map { $_ => 1 } @item_ids } }), 250, '250 distinct item ids');
my $first_item = items($greqs->[0])->[0];
my $first_event = $first_item->{webhook_id};
$first_event =~ s/_$g\z//;
like($gids[0], qr/\Abatch_\Q$first_event\E_${g}_100_/, "the batch id names its first event's id");
is(join(',', map { $_->{headers}{'content-type'} } @$greqs),
	'application/json,application/json,application/json', 'content-type application/json');
is(join(',', map { $_->{headers}{'x-hook-event'} } @$greqs), 'post_save,post_save,post_save',
	'X-Hook-Event: the events of the batch');

# the log: one row per event, each naming its batch and its own webhook-id
is( sql("SELECT count(*), count(DISTINCT webhook_id), count(DISTINCT batch_id), bool_and(success) "
		  . "FROM cocohooks.deliveries WHERE hook_id = $g"),
	'250|250|3|t', 'log: 250 rows, 250 event ids, 3 batch ids, all delivered');
is( sql("SELECT string_agg(c::text, ',' ORDER BY m) FROM (SELECT batch_id, count(*) c, min(id) m "
		  . "FROM cocohooks.deliveries WHERE hook_id = $g GROUP BY batch_id) s"),
	'100,100,50', 'log: rows per batch 100, 100, 50');
my %item_batch;
for my $r (@$greqs)
{
	$item_batch{ $_->{webhook_id} } = $r->{headers}{'webhook-id'} for @{ items($r) };
}
my $log = sql("SELECT webhook_id || ' ' || batch_id FROM cocohooks.deliveries WHERE hook_id = $g");
is(scalar(grep { my ($w, $b) = split / /; ($item_batch{$w} // '') ne $b } split /\n/, $log), 0,
	"log: each row's batch_id is the webhook-id of the request that carried its event");

# ---------- batch_wait: events spread in time are cut by it
sql('CREATE TABLE w (id int PRIMARY KEY, n int)');
register('w', "$recv->{url}/w", batch_size => 100, batch_wait => "'500 ms'", ordering => "'none'");
api_sql($node, q{
	BEGIN; INSERT INTO w VALUES (1, 1); COMMIT;
	BEGIN; INSERT INTO w VALUES (2, 1); COMMIT;
	BEGIN; INSERT INTO w VALUES (3, 1); COMMIT;
	SELECT pg_sleep(1.5);
	BEGIN; INSERT INTO w VALUES (4, 1); COMMIT;
	BEGIN; INSERT INTO w VALUES (5, 1); COMMIT;
});
deliveries_finished('the spread events delivered');
my $wreqs = path_records($recv, '/w');
is(join(' ', map { join ',', map { $_->{document_id} } @{ items($_) } } @$wreqs), '1,2,3 4,5',
	'two batches: the events within batch_wait of the first, then the later ones');

# ---------- signatures over the array body, by the Standard Webhooks library
sql('CREATE TABLE s (id int PRIMARY KEY, title text)');
register('s', "$verifier->{url}/sig", batch_size => 10, batch_wait => "'2 s'",
	secret => "'$secret'", ordering => "'none'");
api_sql($node, q{INSERT INTO s SELECT i, E'Gr\u00fc\u00dfe "q" \\\\ ' || i FROM generate_series(1, 25) i});
deliveries_finished('signed batches delivered');
my $sreqs = records($verifier, sub { $_[0]{path} eq '/sig' });
is(join(',', map { scalar @{ JSON::PP->new->decode($_->{body}) } } @$sreqs), '10,10,5',
	'signed: batches of 10, 10 and 5');
is(scalar(grep { $_->{verified} } @$sreqs), 3,
	'every batch verified by standardwebhooks over its array body')
  or diag(join "\n", map { "$_->{webhook_id}: " . ($_->{error} // '') } @$sreqs);
is(scalar(grep { ($_->{webhook_id} // '') !~ /\Abatch_/ } @$sreqs), 0,
	'signed with the batch webhook-id');

# ---------- per-document order across batches (ordering = 'document')
sql('CREATE TABLE o (id int PRIMARY KEY, n int)');
register('o', "$recv->{url}/slow/20", batch_size => 4, batch_wait => "'20 ms'");
api_sql($node, 'INSERT INTO o VALUES (1, 0), (2, 0), (3, 0)');
my $updates = join "\n",
  map { my $i = $_; map { "UPDATE o SET n = $i WHERE id = $_;" } 1 .. 3 } 1 .. 10;
api_sql($node, $updates);
deliveries_finished('ordered events delivered');
my $oreqs = path_records($recv, '/slow/20');
my %seen;
my $in_order = 1;
for my $it (map { @{ items($_) } } @$oreqs)
{
	my $d = $it->{document_id};
	$in_order = 0 if exists $seen{$d} && $it->{document}{n} <= $seen{$d};
	$seen{$d} = $it->{document}{n};
}
is(scalar(map { @{ items($_) } } @$oreqs), 33, 'ordered: 33 events delivered');
ok($in_order, "ordered: each document's events in order across the batches");
is(scalar(grep { $_->{in_flight} > 1 } @$oreqs), 0,
	'ordered: one batch of the hook at a time');
cmp_ok(scalar(@$oreqs), '<', 33, 'ordered: events went in batches');

# ---------- a failing batch is retried as a batch
sql('CREATE TABLE r (id int PRIMARY KEY, n int)');
my $r = register('r', "$recv->{url}/failfirst", batch_size => 4, batch_wait => "'5 s'",
	ordering => "'none'");
api_sql($node, 'INSERT INTO r SELECT i, i FROM generate_series(1, 4) i');
deliveries_finished('the retried batch delivered');
my $rreqs = path_records($recv, '/failfirst');
is(scalar(@$rreqs), 2, 'retry: two requests, the failed one and its retry');
is(scalar(keys %{ { map { $_->{headers}{'webhook-id'} => 1 } @$rreqs } }), 1,
	'retry: the same batch webhook-id');
is(join(',', map { $_->{webhook_id} } @{ items($rreqs->[1] // $rreqs->[0]) }),
	join(',', map { $_->{webhook_id} } @{ items($rreqs->[0]) }),
	'retry: the same members, in the same order');
is($rreqs->[0]{body}, $rreqs->[1]{body}, 'retry: the same body');
is( sql("SELECT count(*), bool_and(success), min(attempts), max(attempts), count(DISTINCT batch_id) "
		  . "FROM cocohooks.deliveries WHERE hook_id = $r"),
	'4|t|2|2|1', 'retry: four log rows, delivered at the second attempt, one batch');

# ---------- failed for good: every member logged failed, with its payload
sql('CREATE TABLE f (id int PRIMARY KEY, n int)');
my $f = register('f', "$recv->{url}/status/400", batch_size => 3, batch_wait => "'5 s'",
	max_retries => 0, ordering => "'none'");
api_sql($node, 'INSERT INTO f SELECT i, i FROM generate_series(1, 3) i');
deliveries_finished('the failing batch finished');
is( sql("SELECT count(*), count(*) FILTER (WHERE NOT success AND status_code = 400), "
		  . "count(DISTINCT batch_id), count(payload), string_agg(payload->>'document_id', ',' ORDER BY id) "
		  . "FROM cocohooks.deliveries WHERE hook_id = $f"),
	'3|3|1|3|1,2,3', 'failed batch: three failed rows of one batch, each with its own payload');

# ---------- a batch whose retry is parked comes back as the same batch
my $fail_file = PostgreSQL::Test::Utils::tempdir('fail') . '/failing';
open(my $fh, '>', $fail_file) or die "cannot create $fail_file: $!";
close $fh;
my $recv2 = start_receiver(fail_while => $fail_file);
sql('CREATE TABLE p (id int PRIMARY KEY, n int)');
# Retry-After 9 s: the retry is due more than 8 s ahead, so it is parked
my $p = register('p', "$recv2->{url}/status/200?retry_after=9", batch_size => 3,
	batch_wait => "'5 s'", ordering => "'none'");
api_sql($node, 'INSERT INTO p SELECT i, i FROM generate_series(1, 3) i');
ok( wait_until('the batch parked', 30,
		sub { sql("SELECT count(*) FROM cocohooks.retry_queue WHERE hook_id = $p") == 3 }),
	'parked: the failed batch is parked as its three events');
my $preqs = records($recv2);
is(scalar(@$preqs), 1, 'parked: one failed request so far');
is( sql("SELECT string_agg(webhook_id, ',' ORDER BY id) FROM cocohooks.retry_queue WHERE hook_id = $p"),
	join(',', map { $_->{webhook_id} } @{ items($preqs->[0]) }),
	"parked: a row per event, under the event's own webhook-id, in order");
unlink $fail_file;
deliveries_finished('parked: the parked batch delivered');
$preqs = records($recv2);
is(scalar(@$preqs), 2, 'parked: the batch was sent again once');
is($preqs->[1]{headers}{'webhook-id'}, $preqs->[0]{headers}{'webhook-id'},
	'parked: taken back together, the events make the same batch, with the same webhook-id');
is($preqs->[1]{body}, $preqs->[0]{body}, 'parked: the same body');
is( sql("SELECT count(*), bool_and(success), min(attempts), count(DISTINCT batch_id) "
		  . "FROM cocohooks.deliveries WHERE hook_id = $p"),
	'3|t|2|1', 'parked: three rows, delivered at the second attempt, one batch');

# ---------- ordered: a parked batch takes the batch gathering behind it along
# (else that one would go first, and a document's update overtake its create)
my $fail2 = PostgreSQL::Test::Utils::tempdir('fail2') . '/failing';
open($fh, '>', $fail2) or die "cannot create $fail2: $!";
close $fh;
my $recv3 = start_receiver(fail_while => $fail2);
sql('CREATE TABLE q (id int PRIMARY KEY, n int)');
my $q = register('q', "$recv3->{url}/status/200?retry_after=9", batch_size => 2,
	batch_wait => "'5 s'");
# one transaction: create 1, create 2 (a full batch), update 1 (gathering)
api_sql($node, 'BEGIN; INSERT INTO q VALUES (1, 0), (2, 0); UPDATE q SET n = 1 WHERE id = 1; COMMIT;');
my $qparked = 0;
wait_until('the ordered batch parked', 30,
	sub { $qparked = sql("SELECT count(*) FROM cocohooks.retry_queue WHERE hook_id = $q"); $qparked >= 2 });
# the receiver works again at once: a batch not parked would go now, first
unlink $fail2;
is($qparked, 3, 'ordered parking: the failed batch and the one gathering behind it parked together');
deliveries_finished('ordered parking: delivered');
my @qitems = map { @{ items($_) } } grep { !$_->{failed} } @{ records($recv3) };
is(join(' ', map { "$_->{document_id}:$_->{document}{n}" } @qitems), '1:0 2:0 1:1',
	"ordered parking: each document's events in commit order after the parking");

# ---------- 410 Gone: the batch's events fail, the hook is disabled
sql('CREATE TABLE gone (id int PRIMARY KEY, n int)');
my $gone = register('gone', "$recv->{url}/status/410", batch_size => 3, batch_wait => "'5 s'",
	ordering => "'none'");
api_sql($node, 'INSERT INTO gone SELECT i, i FROM generate_series(1, 3) i');
deliveries_finished('410: the batch finished');
is(scalar(@{ path_records($recv, '/status/410') }), 1, '410: one request');
is( sql("SELECT count(*), count(*) FILTER (WHERE NOT success AND status_code = 410), "
		  . "count(DISTINCT batch_id), count(response) FROM cocohooks.deliveries WHERE hook_id = $gone"),
	'3|3|1|3', '410: three failed rows of one batch, each with the response');
ok( wait_until('the hook disabled', 10,
		sub { sql("SELECT NOT enabled AND disabled_reason LIKE '%410 Gone%' FROM cocohooks.hooks WHERE id = $gone") eq 't' }),
	'410: the hook is disabled');

# ---------- pace: max_per_second counts requests, a batch is one
sql('CREATE TABLE pace (id int PRIMARY KEY, n int)');
register('pace', "$recv->{url}/paced", batch_size => 5, batch_wait => "'5 s'",
	max_per_second => 2, ordering => "'none'");
api_sql($node, 'INSERT INTO pace SELECT i, i FROM generate_series(1, 20) i');
deliveries_finished('pace: delivered');
my $pareqs = path_records($recv, '/paced');
is(scalar(@$pareqs), 4, 'pace: 20 events in 4 requests');
my $span = $pareqs->[-1]{received_at} - $pareqs->[0]{received_at};
ok($span >= 1.0 && $span < 4.0,
	sprintf('pace: 4 requests at 2 per second took %.2f s (20 events at 2 per second would take 10 s)', $span));

# ---------- a backfill of a batched hook goes in batches too
sql('CREATE TABLE bf (id int PRIMARY KEY, n int); INSERT INTO bf SELECT i, i FROM generate_series(1, 25) i');
my $bfh = register('bf', "$recv->{url}/bf", batch_size => 10, batch_wait => "'2 s'");
my $bfid = sql("SELECT cocohooks.backfill($bfh)");
ok(wait_until('the backfill done', 60,
		sub { sql("SELECT state FROM cocohooks.backfills WHERE id = $bfid") eq 'done' }),
	'backfill: done');
deliveries_finished('backfill: delivered');
my $bfreqs = path_records($recv, '/bf');
is(join(',', map { scalar @{ items($_) } } @$bfreqs), '10,10,5',
	'backfill: 25 rows in batches of 10, 10 and 5');
is(join(',', map { "$_->{document_id}:$_->{operation}" } map { @{ items($_) } } @$bfreqs),
	join(',', map { "$_:backfill" } 1 .. 25), 'backfill: the rows in key order, one batch at a time');

# ---------- alter_hook between batch sizes; batch_size 1 is the one-event body
sql('CREATE TABLE a (id int PRIMARY KEY, n int)');
my $ah = register('a', "$recv->{url}/a", ordering => "'none'");
api_sql($node, 'INSERT INTO a SELECT i, 1 FROM generate_series(1, 2) i');
deliveries_finished('unbatched events delivered');
sql("SELECT cocohooks.alter_hook($ah, batch_size => 3, batch_wait => '5 s')");
api_sql($node, 'INSERT INTO a SELECT i, 2 FROM generate_series(3, 5) i');
deliveries_finished('batched events delivered');
sql("SELECT cocohooks.alter_hook($ah, batch_size => 1)");
api_sql($node, 'INSERT INTO a SELECT i, 3 FROM generate_series(6, 7) i');
deliveries_finished('unbatched again');
my $areqs = path_records($recv, '/a');
my @ashape = map {
	ref(items($_)) eq 'ARRAY'
	  ? '[' . join(',', map { $_->{document_id} } @{ items($_) }) . ']'
	  : items($_)->{document_id}
} @$areqs;
# the events sent alone may arrive in either order (ordering 'none')
is(join(' ', sort(@ashape[0, 1]), $ashape[2], sort(@ashape[3, 4])), '1 2 [3,4,5] 6 7',
	'alter_hook: alone, then a batch of three, then alone again');
is(scalar(grep { ref(items($_)) ne 'ARRAY' && $_->{headers}{'webhook-id'} !~ /\A\w+_$ah\z/ } @$areqs), 0,
	'alone: the webhook-id is the event\'s own, as before batches');
is(scalar(grep { ref(items($_)) ne 'ARRAY' && exists items($_)->{webhook_id} } @$areqs), 0,
	'alone: the body is the event\'s, with no webhook_id added');
is(sql("SELECT count(*) FILTER (WHERE batch_id IS NULL), count(*) FILTER (WHERE batch_id IS NOT NULL) "
		  . "FROM cocohooks.deliveries WHERE hook_id = $ah"),
	'4|3', 'log: batch_id NULL for the events sent alone');

# ---------- kill -9 of the worker with a batch in flight
sql('CREATE TABLE c (id int PRIMARY KEY, n int)');
my $c = register('c', "$recv->{url}/slow/3000", batch_size => 5, batch_wait => "'5 s'",
	ordering => "'none'");
api_sql($node, 'INSERT INTO c SELECT i, i FROM generate_series(1, 5) i');
ok(wait_until('the batch in flight', 30, sub { @{ path_records($recv, '/slow/3000') } >= 1 }),
	'crash: the batch reached the receiver');
my $pid = worker_pid($node);
kill 'KILL', $pid;
ok(wait_server($node), 'crash: the server is back after the worker was killed');
ok(wait_worker($node, 60, $pid), 'crash: a new worker runs');
ok(wait_until('the batch again', 60, sub { @{ path_records($recv, '/slow/3000') } >= 2 }),
	'crash: the batch was sent again');
deliveries_finished('crash: every event delivered');
my $creqs = path_records($recv, '/slow/3000');
is(scalar(keys %{ { map { $_->{headers}{'webhook-id'} => 1 } @$creqs } }), 1,
	'crash: the same batch webhook-id after the restart');
is(scalar(keys %{ { map { join(',', map { $_->{webhook_id} } @{ items($_) }) => 1 } @$creqs } }), 1,
	'crash: the same members after the restart');
is(join(',', map { $_->{document_id} } @{ items($creqs->[-1]) }), '1,2,3,4,5',
	'crash: all five events in the batch, in order');
is( sql("SELECT count(*), bool_and(success), count(DISTINCT batch_id), "
		  . "bool_and(batch_id = '$creqs->[0]{headers}{'webhook-id'}') "
		  . "FROM cocohooks.deliveries WHERE hook_id = $c"),
	'5|t|1|t', 'crash: five log rows, one batch, its id the one sent');

$node->stop;

# ---------- memory mode: an orderly exit with a batch in flight saves its
# events; the next worker batches them again, same webhook-id, same events
my $mnode = new_node('batches_memory', conf => "cocohooks.durability = memory\n");
$mnode->start;
create_extension($mnode);
$mnode->safe_psql('postgres', 'CREATE TABLE m (id int PRIMARY KEY, n int)');
$mnode->safe_psql('postgres',
	"SELECT cocohooks.register_hook('m', 'post_save', '$recv->{url}/slow/2000?m', "
	  . "batch_size => 4, batch_wait => '5 s', ordering => 'none')");
api_sql($mnode, 'INSERT INTO m SELECT i, i FROM generate_series(1, 4) i');
ok(wait_until('the memory-mode batch in flight', 30,
		sub { @{ path_records($recv, '/slow/2000?m') } >= 1 }),
	'memory: the batch reached the receiver');
my $mpid = worker_pid($mnode);
$mnode->safe_psql('postgres', "SELECT pg_terminate_backend($mpid)");
ok(defined wait_worker($mnode, 30, $mpid), 'memory: a new worker after SIGTERM');
ok(wait_until('the batch again', 30, sub { @{ path_records($recv, '/slow/2000?m') } >= 2 }),
	'memory: the saved events were sent again');
is($mnode->safe_psql('postgres', "SELECT cocohooks.wait_for_deliveries('30 s')"), 't',
	'memory: every event delivered');
my $mreqs = path_records($recv, '/slow/2000?m');
is(scalar(keys %{ { map { $_->{headers}{'webhook-id'} => 1 } @$mreqs } }), 1,
	'memory: the same batch webhook-id after the orderly restart');
is(join(' ', map { join(',', map { $_->{document_id} } @{ items($_) }) } @$mreqs[0, -1]),
	'1,2,3,4 1,2,3,4', 'memory: the same events, in order');
$mnode->stop;
done_testing();
