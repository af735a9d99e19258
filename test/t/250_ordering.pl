# ordering = 'document' (the default): for one hook, a document's events are
# attempted one at a time, in commit order; a later one waits until the
# earlier one succeeded or failed for good; other documents are not held
# back.  ordering = 'none' sends as they come.  Checked on the receipts,
# in the order the receiver got them: a document's "v" (its version,
# raised by each update) must never go back.  After a restart or crash an
# event may come again under its webhook-id; the order is that of each
# webhook-id's first receipt (what a receiver that skips seen ids sees).
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
my $node = new_node('ordering', conf => qq{
cocohooks.retry_max_backoff = '1s'
max_prepared_transactions = 5
restart_after_crash = on
});
$node->start;
create_extension($node);

# Receipts of a table, in the order received: [ [doc, v, webhook-id, received_at] ].
sub receipts
{
	my ($table, %opts) = @_;
	my @out;
	my %seen;
	for my $r (@{ records($recv) })
	{
		my $b = eval { body_of($r) } or next;
		next unless ($b->{collection} // '') eq $table;
		my $id = $r->{headers}{'webhook-id'};
		next if $opts{first_only} && $seen{$id}++;
		# pre_* bodies carry no document_id: the key is in the document
		push @out, [ $b->{document_id} // $b->{document}{id}, $b->{document}{v}, $id, $r->{received_at} ];
	}
	return \@out;
}

# How many receipts went back in their document's history.
sub steps_back
{
	my ($receipts) = @_;
	my (%last, $back);
	$back = 0;
	for my $r (@$receipts)
	{
		my ($doc, $v) = @$r;
		$back++ if defined $last{$doc} && $v < $last{$doc};
		$last{$doc} = $v;
	}
	return $back;
}

# The distinct versions each document received: { doc => n }.
sub versions_received
{
	my ($receipts) = @_;
	my %v;
	$v{ $_->[0] }{ $_->[1] } = 1 for @$receipts;
	return { map { $_ => scalar(keys %{ $v{$_} }) } keys %v };
}

# Updates each of @docs $n times, each update its own transaction, the
# documents interleaved: v goes 1..$n.
sub update_rounds
{
	my ($table, $n, @docs) = @_;
	my $ids = join(',', map { "'$_'" } @docs);
	api_sql($node, qq{
		DO \$\$
		BEGIN
			FOR i IN 1..$n LOOP
				UPDATE $table SET v = i WHERE id IN ($ids);
				COMMIT;
			END LOOP;
		END \$\$;
	});
	return;
}

sub make_table
{
	my ($table, $hook_url, $ordering, @docs) = @_;
	my $event = 'post_save';
	($event, @docs) = @docs if $docs[0] =~ /^(pre|post)_/;
	my $values = join(',', map { "('$_', 0)" } @docs);
	$node->safe_psql('postgres', qq{
		CREATE TABLE $table (id text PRIMARY KEY, v int NOT NULL);
		INSERT INTO $table VALUES $values;
		SELECT cocohooks.register_hook('$table', '$event', '$hook_url',
			max_retries => 5, ordering => '$ordering');
	});
	return;
}

# A table of documents d1 .. d$n at version 0, with a post_save hook.
sub numbered_table
{
	my ($table, $n) = @_;
	$node->safe_psql('postgres', qq{
		CREATE TABLE $table (id text PRIMARY KEY, v int NOT NULL);
		INSERT INTO $table SELECT 'd' || g, 0 FROM generate_series(1, $n) g;
		SELECT cocohooks.register_hook('$table', 'post_save', '$recv->{url}');
	});
	return;
}

my @five = map { "doc$_" } 1 .. 5;

# --- a flaky receiver: each webhook-id's first attempt fails ---------------
make_table('flaky_doc', "$recv->{url}/failfirst", 'document', @five);
make_table('flaky_none', "$recv->{url}/failfirst", 'none', @five);
make_table('flaky_pre', "$recv->{url}/failfirst", 'document', 'pre_save', @five);
update_rounds('flaky_doc', 12, @five);
update_rounds('flaky_none', 12, @five);
update_rounds('flaky_pre', 12, @five);
ok(wait_deliveries($node, '120 s'), 'flaky receiver: every event delivered after its retry');

my $doc = receipts('flaky_doc');
is(scalar(@$doc), 5 * 12 * 2, "ordering 'document': 120 receipts (60 events, each failed once)");
is(steps_back($doc), 0, "ordering 'document': no receipt went back in its document's history");
is_deeply(versions_received($doc), { map { $_ => 12 } @five },
	"ordering 'document': every version of every document arrived");
my $none = receipts('flaky_none');
is(scalar(@$none), 120, "ordering 'none': 120 receipts");
cmp_ok(steps_back($none), '>', 0,
	"ordering 'none': receipts did go back (the check above can fail)");
diag(sprintf("steps back with a flaky receiver: 'document' %d, 'none' %d",
	steps_back($doc), steps_back($none)));
# pre_save events (sent as each write happens) follow the writes' order
my $pre = receipts('flaky_pre');
is(scalar(@$pre), 120, 'pre_save, ordering \'document\': 120 receipts');
is(steps_back($pre), 0, 'pre_save: no receipt went back in its document\'s history');

# attempts of one event are in order too: a document's next event is sent
# only after the previous one's retry succeeded
{
	my (%last_id, $interleaved);
	$interleaved = 0;
	my %done;
	for my $r (@$doc)
	{
		my ($d, $v, $id) = @$r;
		$interleaved++ if defined $last_id{$d} && $last_id{$d} ne $id && !$done{ $last_id{$d} };
		$done{ $last_id{$d} } = 1 if defined $last_id{$d} && $last_id{$d} eq $id;
		$last_id{$d} = $id;
	}
	is($interleaved, 0, "ordering 'document': no event was sent before the previous one succeeded");
}

# --- one hot document, 1,000 updates in a row ------------------------------
make_table('hot', $recv->{url}, 'document', 'hot1');
my $t0 = time();
update_rounds('hot', 1000, 'hot1');
ok(wait_deliveries($node, '60 s'), 'hot document: 1,000 updates delivered');
my $elapsed = time() - $t0;
my $hot = receipts('hot');
is(scalar(@$hot), 1000, 'hot document: 1,000 receipts');
is_deeply([ map { $_->[1] } @$hot ], [ 1 .. 1000 ], 'hot document: received as 1, 2, ..., 1000');
diag(sprintf("hot document: 1,000 updates written and delivered in %.2f s", $elapsed));

# --- a slow document holds back only itself; 'none' runs concurrently -------
# the receiver waits 3 s for any body of document "slow"
my $slow_url = "$recv->{url}/if/%22slow%22/3000/200";
for my $ordering ('document', 'none')
{
	my $t = "concurrent_$ordering";
	make_table($t, $slow_url, $ordering, 'slow', 'fast');
	my $start = time();
	api_sql($node, "UPDATE $t SET v = 1 WHERE id = 'slow'");
	api_sql($node, "UPDATE $t SET v = 1 WHERE id = 'fast'");
	api_sql($node, "UPDATE $t SET v = 2 WHERE id = 'slow'");
	wait_until("$t: fast document", 10,
		sub { grep { $_->[0] eq 'fast' } @{ receipts($t) } });
	my ($fast) = grep { $_->[0] eq 'fast' } @{ receipts($t) };
	ok($fast && $fast->[3] - $start < 2,
		"$ordering: another document is not held back by a slow one");
	ok(wait_deliveries($node, '30 s'), "$ordering: all delivered");
	my @slow = grep { $_->[0] eq 'slow' } @{ receipts($t) };
	is(scalar(@slow), 2, "$ordering: both events of the slow document arrived");
	if ($ordering eq 'document')
	{
		# the second is sent only once the first was answered (3 s later)
		ok(@slow == 2 && $slow[0][1] == 1 && $slow[1][3] - $slow[0][3] >= 2.9,
			"document: the slow document's second event waited for the first");
	}
	else
	{
		ok(@slow == 2 && abs($slow[1][3] - $slow[0][3]) < 2,
			"none: the slow document's two events were sent together");
	}
}

# --- a failing document holds back only itself --------------------------------
{
	my $t = 'failing';
	$node->safe_psql('postgres', qq{
		CREATE TABLE $t (id text PRIMARY KEY, v int NOT NULL);
		INSERT INTO $t VALUES ('bad', 0), ('good', 0);
		SELECT cocohooks.register_hook('$t', 'post_save',
			'$recv->{url}/if/%22bad%22/0/500', max_retries => 2);
	});
	update_rounds($t, 3, 'bad', 'good');
	wait_until('good document', 10,
		sub { (grep { $_->[0] eq 'good' } @{ receipts($t) }) == 3 });
	my @bad = grep { $_->[0] eq 'bad' } @{ receipts($t) };
	is(scalar(grep { $_->[0] eq 'good' } @{ receipts($t) }), 3,
		'failing document: the other document got its 3 events meanwhile');
	cmp_ok(scalar(@bad), '<', 9, 'failing document: it was still being retried then');
	ok(wait_deliveries($node, '60 s'), 'failing document: finished');
	@bad = grep { $_->[0] eq 'bad' } @{ receipts($t) };
	is(scalar(@bad), 9, 'failing document: each of its 3 events was tried 3 times');
	is(steps_back(\@bad), 0, 'failing document: its attempts went in order');
	is($node->safe_psql('postgres',
		"SELECT string_agg(document_id || ':' || success, ',' ORDER BY finished_at) FROM cocohooks.deliveries d JOIN cocohooks.hooks h ON h.id = d.hook_id WHERE h.collection = '$t'::regclass AND document_id = 'bad'"),
		'bad:false,bad:false,bad:false',
		'failing document: each event failed for good, then the next went');
}

# --- a big transaction the queue cannot carry, then a queued write ---------
# The 5,000-row update goes to the WAL only (past work_mem, queue of 64 kB
# is not needed for that); the next update of its last row is queued at
# once, and must wait for the WAL reader to hand on the big one's events.
{
	my $t = 'wal_then_queue';
	numbered_table($t, 5000);
	api_sql($node, qq{
		SET work_mem = '64kB';
		UPDATE $t SET v = 1;
		RESET work_mem;
		UPDATE $t SET v = 2 WHERE id = 'd5000';
	});
	ok(wait_deliveries($node, '60 s'), 'WAL-only transaction then a queued one: delivered');
	my @last = grep { $_->[0] eq 'd5000' } @{ receipts($t) };
	is(join(',', map { $_->[1] } @last), '1,2',
		'the queued event waited for the WAL-only event of its document');
}

# --- one transaction past work_mem, with savepoints ------------------------
# Its events reach the WAL in batches, a batch per savepoint level: the
# last row's update (batched at the top level, not yet written when the
# savepoint starts), then its update in a released savepoint, then one in
# a rolled-back savepoint (never delivered), then one more at the top.
{
	my $t = 'savepoints';
	numbered_table($t, 3000);
	api_sql($node, qq{
		SET work_mem = '64kB';
		BEGIN;
		UPDATE $t SET v = 1;
		SAVEPOINT s;
		UPDATE $t SET v = 2 WHERE id = 'd3000';
		RELEASE SAVEPOINT s;
		SAVEPOINT r;
		UPDATE $t SET v = 3 WHERE id = 'd3000';
		ROLLBACK TO SAVEPOINT r;
		SAVEPOINT q;
		UPDATE $t SET v = 5 WHERE id = 'd2999';
		ROLLBACK TO SAVEPOINT q;
		UPDATE $t SET v = 4 WHERE id = 'd3000';
		COMMIT;
	});
	ok(wait_deliveries($node, '60 s'), 'savepoints: delivered');
	my $r = receipts($t);
	is(scalar(@$r), 3002, 'savepoints: 3,002 events (none of the rolled-back savepoints)');
	is(join(',', map { $_->[1] } grep { $_->[0] eq 'd3000' } @$r), '1,2,4',
		'savepoints: the last row\'s events in the order written');
	is(join(',', map { $_->[1] } grep { $_->[0] eq 'd2999' } @$r), '1',
		'savepoints: a rolled-back savepoint takes only its own events');
}

# --- COMMIT PREPARED, then a write of the same document --------------------
{
	my $t = 'prepared';
	make_table($t, $recv->{url}, 'document', 'p');
	my $sql = '';
	for my $i (1 .. 20)
	{
		my ($a, $b) = (2 * $i - 1, 2 * $i);
		$sql .= "BEGIN; UPDATE $t SET v = $a WHERE id = 'p'; PREPARE TRANSACTION 'o$i';\n"
		  . "COMMIT PREPARED 'o$i';\nUPDATE $t SET v = $b WHERE id = 'p';\n";
	}
	api_sql($node, $sql);
	ok(wait_deliveries($node, '60 s'), 'prepared: delivered');
	my $r = receipts($t);
	is(scalar(@$r), 40, 'prepared: 40 receipts');
	is(steps_back($r), 0, 'prepared: a committed prepared transaction\'s event came before the next write\'s');
}

# --- order across a worker restart and a crash ------------------------------
# 5 documents, 40 updates each, behind a receiver that answers in 150 ms;
# the worker is terminated, and later the server crashes, with events
# outstanding.
for my $fault ('worker restart', 'crash')
{
	(my $t = "fault_$fault") =~ s/ /_/g;
	make_table($t, "$recv->{url}/slow/150", 'document', @five);
	update_rounds($t, 40, @five);
	wait_until("$t: some receipts", 20, sub { @{ receipts($t) } >= 20 });
	if ($fault eq 'worker restart')
	{
		my $pid = worker_pid($node);
		$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
		ok(wait_worker($node, 30, $pid), "$fault: a new worker started");
	}
	else
	{
		my $pid = $node->safe_psql('postgres', "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'");
		kill 'KILL', $pid;
		ok(wait_server($node, 60), "$fault: the server is back");
		wait_worker($node, 30);
	}
	# writes after the fault, queued while older events come from the WAL
	api_sql($node, "UPDATE $t SET v = 41");
	ok(wait_deliveries($node, '120 s'), "$fault: delivered");
	my $first = receipts($t, first_only => 1);
	is(steps_back($first), 0, "$fault: no first receipt went back in its document's history");
	is_deeply(versions_received($first), { map { $_ => 41 } @five },
		"$fault: every version of every document arrived");
}

# --- memory mode: the next worker sends the saved events first -------------
# A terminated worker saves what it had not finished (and what was still
# queued); writes made before the next worker starts are queued behind
# them, and must not overtake them.
{
	$node->stop;
	$node = new_node('ordering_memory', conf => "cocohooks.durability = memory\n");
	$node->start;
	create_extension($node);
	my $t = 'memory_restart';
	# slow enough that events are still unfinished when the worker is
	# terminated, however long receipts() takes to read the receiver's
	# whole log under load (it took 7 s once, when 150 ms let all 200
	# events finish first)
	make_table($t, "$recv->{url}/slow/500", 'document', @five);
	update_rounds($t, 40, @five);
	wait_until("$t: some receipts", 20, sub { @{ receipts($t) } >= 20 });
	my $pid = worker_pid($node);
	$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
	api_sql($node, "UPDATE $t SET v = 41");
	ok(wait_worker($node, 30, $pid), 'memory mode: a new worker started');
	ok($node->log_contains(qr/cocohooks worker saved \d+ undelivered events/),
		'memory mode: the worker saved its unfinished events');
	ok(wait_deliveries($node, '120 s'), 'memory mode: delivered');
	my $first = receipts($t, first_only => 1);
	is(steps_back($first), 0,
		'memory mode: the saved events went before the writes queued meanwhile');
	is_deeply(versions_received($first), { map { $_ => 41 } @five },
		'memory mode: every version of every document arrived');
}

done_testing();
