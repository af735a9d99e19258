# Backfills (issue 24): cocohooks.backfill() sends the rows a post_save
# hook's collection already holds, as post_save events whose operation is
# "backfill", in primary-key order, a chunk at a time, while writers go on.
#  - 100,000 rows while 2 API clients update random rows: every row
#    arrives, and for each document the last event the receiver got is its
#    latest version (wal mode; 20,000 rows in memory mode too);
#  - the body: document as stored less exclude_columns, document_id, no
#    old_data, webhook-id bf<id>_<key>_<hook>; the hook's and the
#    backfill's filters; progress in cocohooks.backfills;
#  - an immediate stop mid-backfill: it goes on after the last recorded
#    key, rows before it are not sent again, every row arrives, a row sent
#    twice has the same webhook-id;
#  - cancel_backfill(); a disabled hook's backfill waits for it.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use IPC::Run;
use JSON::PP;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use CocoHooksTest;

my $recv = start_receiver();

# The records of a path, decoded (lines of other paths are not).
sub on_path
{
	my ($path) = @_;
	my @recs;
	my $key = qq{"path": "$path"};
	open my $fh, '<', $recv->{log} or return [];
	while (my $line = <$fh>)
	{
		next unless $line =~ /\n\z/ && index($line, $key) >= 0;
		my $r = JSON::PP::decode_json($line);
		push @recs, $r if $r->{path} eq $path;
	}
	close $fh;
	return \@recs;
}

# How many records a path has (not decoded).
sub count_path
{
	my ($path) = @_;
	my $n = 0;
	my $key = qq{"path": "$path"};
	open my $fh, '<', $recv->{log} or return 0;
	while (my $line = <$fh>)
	{
		$n++ if index($line, $key) >= 0;
	}
	close $fh;
	return $n;
}

# Per document of a path's records (100,000s: Python reads them faster):
# { id => [v of the last one received, backfill records, records,
# distinct webhook-ids, records older than one received before it] }.
my $summary_script = PostgreSQL::Test::Utils::tempdir() . '/summary.py';
PostgreSQL::Test::Utils::append_to_file($summary_script, <<'PY');
import json, sys
docs = {}
for line in open(sys.argv[1], encoding="utf-8"):
    if not line.endswith("\n") or ('"path": "%s"' % sys.argv[2]) not in line:
        continue
    r = json.loads(line)
    if r["path"] != sys.argv[2]:
        continue
    b = json.loads(r["body"])
    d = docs.setdefault(b["document"]["id"], [None, 0, 0, set(), 0])
    v = b["document"].get("v")
    # a version older than one received before (v only grows)
    if v is not None and d[0] is not None and v < d[0]:
        d[4] += 1
    d[0] = v
    d[1] += b.get("operation") == "backfill"
    d[2] += 1
    d[3].add(r["headers"].get("webhook-id"))
for i, d in docs.items():
    print("%s|%s|%d|%d|%d|%d" % (i, d[0], d[1], d[2], len(d[3]), d[4]))
PY

sub summary
{
	my ($path) = @_;
	my %docs;
	for my $line (split /\n/, `python3 $summary_script $recv->{log} $path`)
	{
		my ($id, @rest) = split /\|/, $line;
		$docs{$id} = \@rest;
	}
	return \%docs;
}

sub backfill_row
{
	my ($node, $id) = @_;
	my $r = $node->safe_psql('postgres',
		"SELECT state, rows_read, rows_sent, rows_filtered, rows_superseded, coalesce(last_key, '') "
		  . "FROM cocohooks.backfills WHERE id = $id");
	my %b;
	@b{qw(state read sent filtered superseded last_key)} = split /\|/, $r;
	return \%b;
}

sub wait_backfill_done
{
	my ($node, $id, $timeout) = @_;
	return wait_until("backfill $id done", $timeout,
		sub { backfill_row($node, $id)->{state} eq 'done' });
}

# Starts 2 pgbench clients updating random rows of $table (1..$n) through
# the API for $secs seconds; returns the handle.
sub start_writers
{
	my ($node, $table, $n, $secs) = @_;
	my $script = PostgreSQL::Test::Utils::tempdir() . "/update_$table.sql";
	PostgreSQL::Test::Utils::append_to_file($script,
		    "\\set id random(1, $n)\n"
		  . "SET cocohooks.api_session = on;\n"
		  . "UPDATE $table SET v = v + 1 WHERE id = :id;\n");
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[
			'pgbench', '-n', '-c', '2', '-j', '2', '-T', $secs, '-f', $script,
			'-h', $node->host, '-p', $node->port, 'postgres'
		],
		'<', \undef, '>', \$out, '2>', \$err);
	return { handle => $h, out => \$out, err => \$err };
}

# Every row arrives, and each document's last event is its latest version.
sub check_latest
{
	my ($node, $table, $path, $label) = @_;
	my $docs = summary($path);
	my %now = map { split /\|/ } split /\n/,
	  $node->safe_psql('postgres', "SELECT id, v FROM $table");
	my @missing = grep { !exists $docs->{$_} } keys %now;
	my @stale = grep { exists $docs->{$_} && $docs->{$_}[0] != $now{$_} } keys %now;
	is(scalar(@missing), 0, "$label: every row arrived") or diag("missing: @missing[0 .. 9]");
	is(scalar(@stale), 0, "$label: each document's last event is its latest version")
	  or diag(join ', ', map { "$_: got $docs->{$_}[0], is $now{$_}" } @stale[ 0 .. 9 ]);
	my @back = grep { $docs->{$_}[4] > 0 } keys %$docs;
	is(scalar(@back), 0, "$label: no document's event (backfill or update) came after a newer one")
	  or diag("went back: @back[0 .. 9]");
	return $docs;
}

# --- wal mode: 100,000 rows under 2 writers ----------------------------------
my $node = new_node('backfill');
$node->start;
create_extension($node);

my $N = 100000;
my $hook = $node->safe_psql('postgres', qq{
	CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL DEFAULT 0, note text, secret text);
	INSERT INTO items SELECT g, 0, 'row ' || g, 'hidden' FROM generate_series(1, $N) g;
	SELECT cocohooks.register_hook('items', 'post_save', '$recv->{url}/items',
		exclude_columns => ARRAY['secret']);
});
my $w = start_writers($node, 'items', $N, 30);
# let the writers start before the backfill
wait_until('first updates', 20, sub { count_path('/items') >= 50 });
my $t0 = time();
my $bf = $node->safe_psql('postgres', "SELECT cocohooks.backfill($hook)");
ok(wait_backfill_done($node, $bf, 240), '100,000-row backfill done under 2 writers');
my $secs = time() - $t0;
$w->{handle}->finish;
like(${ $w->{out} }, qr/number of transactions actually processed: \d+/, 'the writers ran')
  or diag(${ $w->{err} });
my ($updates) = ${ $w->{out} } =~ /number of transactions actually processed: (\d+)/;
ok(wait_deliveries($node, '120 s'), 'the updates\' events finished');
my $row = backfill_row($node, $bf);
diag(sprintf('backfill of %d rows in %.1f s under %d updates: sent %d, superseded %d',
		$N, $secs, $updates // 0, $row->{sent}, $row->{superseded}));
is($row->{read}, $N, 'rows_read is every row');
is($row->{sent} + $row->{superseded}, $N, 'each row sent or superseded by its own event');
is($row->{last_key}, "$N", 'last_key is the last row\'s');
my $docs = check_latest($node, 'items', '/items', 'wal mode, 100,000 rows');
is(scalar(grep { $_->[1] == 1 } values %$docs), $row->{sent}, 'the receiver got each sent row once');
is(scalar(grep { $_->[1] > 1 } values %$docs), 0, 'and none twice');

# the body and the ids
my ($one) = grep { body_of($_)->{operation} eq 'backfill' } @{ on_path('/items') }[ -20 .. -1 ];
my $body = body_of($one);
is_deeply([ sort keys %$body ], [qw(collection document document_id event operation)],
	'a backfill body: event, collection, operation, document, document_id; no old_data');
is($body->{event}, 'post_save', 'event post_save');
is($body->{collection}, 'items', 'collection');
ok(!exists $body->{document}{secret}, 'exclude_columns left out');
is($body->{document}{note}, "row $body->{document}{id}", 'the row as stored');
is($body->{document_id}, "$body->{document}{id}", 'document_id is the key as a string');
is($one->{headers}{'webhook-id'}, "bf${bf}_$body->{document}{id}_$hook",
	'webhook-id bf<backfill>_<key>_<hook>');
like($one->{body}, qr/^\{"event": "post_save", "collection": "items", "operation": "backfill", "document": /,
	'keys in the contract\'s order');

# another backfill of the same hook is refused while one runs: none does now
my $bf2 = $node->safe_psql('postgres', "SELECT cocohooks.backfill($hook, filter => 'NEW.id <= 10')");
ok(wait_backfill_done($node, $bf2, 30), 'a second backfill of 10 rows (filter) done');
$row = backfill_row($node, $bf2);
is("$row->{read}/$row->{sent}/$row->{filtered}", "$N/10/" . ($N - 10),
	'a backfill filter: all rows read, 10 sent, the rest filtered');

# the hook's own filter applies too
my $hf = $node->safe_psql('postgres', qq{
	SELECT cocohooks.register_hook('items', 'post_save', '$recv->{url}/even',
		filter => 'NEW.id % 2 = 0 AND NEW.id <= 1000', max_concurrent => 1);
});
my $bf3 = $node->safe_psql('postgres', "SELECT cocohooks.backfill($hf, batch_rows => 300)");
ok(wait_backfill_done($node, $bf3, 60), 'backfill of a filtered hook done');
my $even = on_path('/even');
is(scalar(@$even), 500, 'the hook\'s filter: 500 rows sent');
is(scalar(grep { body_of($_)->{document}{id} % 2 } @$even), 0, 'only rows the filter passes');
my @ids = map { body_of($_)->{document}{id} } @$even;
is_deeply(\@ids, [ sort { $a <=> $b } @ids ], 'in primary-key order (one request at a time: max_concurrent 1)');
ok(exists body_of($even->[0])->{document}{secret}, 'no exclude_columns on this hook');

# --- refused: another event, no key of one column, one running, not the owner --
sub psql_err
{
	my ($sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', $sql);
	return $err;
}
my $hd = $node->safe_psql('postgres',
	"SELECT cocohooks.register_hook('items', 'post_delete', '$recv->{url}/deleted')");
like(psql_err("SELECT cocohooks.backfill($hd)"),
	qr/ERROR:  cannot backfill hook $hd\nDETAIL:  Hook $hd is a post_delete hook; only post_save hooks are backfilled\./,
	'a post_delete hook is refused');
# hooks need a primary key of one column, but it may be dropped since
my $hk = $node->safe_psql('postgres', qq{
	CREATE TABLE nokey (a int PRIMARY KEY, b int);
	SELECT cocohooks.register_hook('nokey', 'post_save', '$recv->{url}/nokey');
});
$node->safe_psql('postgres', 'ALTER TABLE nokey DROP CONSTRAINT nokey_pkey');
like(psql_err("SELECT cocohooks.backfill($hk)"),
	qr/ERROR:  cannot backfill hook $hk\nDETAIL:  Table "nokey" has no primary key of one column\.\nHINT:  A backfill reads the table in the order of its primary key\./,
	'a table whose primary key was dropped is refused');
# one at a time per hook: a disabled hook's backfill stays running
$node->safe_psql('postgres', "SELECT cocohooks.disable_hook($hf)");
my $held = $node->safe_psql('postgres', "SET client_min_messages = warning; SELECT cocohooks.backfill($hf)");
like(psql_err("SELECT cocohooks.backfill($hf)"),
	qr/ERROR:  hook $hf already has a running backfill\nDETAIL:  Backfill $held is running\.\nHINT:  Wait for it to finish, or cancel it with cocohooks\.cancel_backfill\($held\)\./,
	'a second backfill of a hook is refused while one runs');
# another role: not the owner of the collection
$node->safe_psql('postgres', "CREATE ROLE tenant LOGIN; GRANT USAGE ON SCHEMA cocohooks TO tenant");
like(psql_err("SET ROLE tenant; SELECT cocohooks.backfill($hook)"),
	qr/ERROR:  must be owner of table items/, 'backfill() of another owner\'s hook is refused');
like(psql_err("SET ROLE tenant; SELECT cocohooks.cancel_backfill($held)"),
	qr/ERROR:  must be owner of table items/, 'cancel_backfill() too');
is($node->safe_psql('postgres', "SET ROLE tenant; SELECT count(*) FROM cocohooks.backfills"),
	'0', 'and cocohooks.backfills shows it none of them');
is($node->safe_psql('postgres', "SELECT cocohooks.cancel_backfill($held)"), 't', 'the owner cancels it');
$node->safe_psql('postgres', "SELECT cocohooks.enable_hook($hf)");

# --- an immediate stop mid-backfill -----------------------------------------
$node->safe_psql('postgres', qq{
	CREATE TABLE crash (id bigint PRIMARY KEY, v int NOT NULL DEFAULT 0);
	INSERT INTO crash SELECT g, 0 FROM generate_series(1, 20000) g;
});
my $hc = $node->safe_psql('postgres',
	"SELECT cocohooks.register_hook('crash', 'post_save', '$recv->{url}/crash', max_per_second => 2000)");
my $bfc = $node->safe_psql('postgres', "SELECT cocohooks.backfill($hc, batch_rows => 500)");
ok( wait_until('a recorded key', 60, sub { backfill_row($node, $bfc)->{read} >= 2000 }),
	'progress recorded before the stop');
my $at_stop = backfill_row($node, $bfc);
$node->stop('immediate');
my $before_restart = count_path('/crash');
$node->start;
ok(wait_backfill_done($node, $bfc, 120), 'the backfill went on after the restart and finished');
my $crash = summary('/crash');
is(scalar(keys %$crash), 20000, 'every row arrived');
is(scalar(grep { $_ <= $at_stop->{last_key} && $crash->{$_}[2] > 1 } keys %$crash), 0,
	"no row up to the recorded key ($at_stop->{last_key}) was sent again");
is(scalar(grep { $crash->{$_}[3] > 1 } keys %$crash), 0, 'a row sent twice has one webhook-id');
diag(sprintf('stopped at recorded key %s with %d received; %d received in all, %d rows twice',
		$at_stop->{last_key}, $before_restart, count_path('/crash'),
		scalar(grep { $_->[2] > 1 } values %$crash)));
cmp_ok($at_stop->{last_key}, '<', 20000, 'the stop came mid-backfill');

# --- cancel --------------------------------------------------------------------
my $hx = $node->safe_psql('postgres', qq{
	CREATE TABLE slow (id int PRIMARY KEY);
	INSERT INTO slow SELECT generate_series(1, 50000);
	SELECT cocohooks.register_hook('slow', 'post_save', '$recv->{url}/slow', max_per_second => 200);
});
my $bfx = $node->safe_psql('postgres', "SELECT cocohooks.backfill($hx, batch_rows => 100)");
wait_until('some rows of the slow backfill', 30, sub { count_path('/slow') >= 100 });
is($node->safe_psql('postgres', "SELECT count(*) FROM cocohooks.retry_queue WHERE hook_id = $hx"), '0',
	'at its hook\'s pace (200/s): nothing parked, the rest waits in the table');
is($node->safe_psql('postgres', "SELECT cocohooks.cancel_backfill($bfx)"), 't', 'cancel_backfill: true');
is(backfill_row($node, $bfx)->{state}, 'cancelled', 'state cancelled');
sleep 3;
my $n1 = count_path('/slow');
sleep 2;
is(count_path('/slow'), $n1, 'nothing more is sent after the cancel');
cmp_ok($n1, '<', 2000, "a few rows sent ($n1 of 50,000)");
is($node->safe_psql('postgres', "SELECT cocohooks.cancel_backfill($bfx)"), 'f',
	'cancel_backfill of an ended backfill: false');

# --- a disabled hook's backfill waits -------------------------------------------
$node->safe_psql('postgres', "SELECT cocohooks.disable_hook($hx)");
my ($ret, $out, $err) = $node->psql('postgres', "SELECT cocohooks.backfill($hx, filter => 'NEW.id <= 5')");
like($err, qr/NOTICE:  hook $hx is disabled/, 'backfill of a disabled hook: a NOTICE');
my $bfd = $out;
sleep 2;
is(backfill_row($node, $bfd)->{state}, 'running', 'it waits while the hook is disabled');
$node->safe_psql('postgres', "SELECT cocohooks.enable_hook($hx)");
ok(wait_backfill_done($node, $bfd, 30), 'and runs once it is enabled');

# --- memory mode: 20,000 rows under 2 writers ------------------------------------
$node->append_conf('postgresql.conf', "cocohooks.durability = 'memory'\n");
$node->restart;
wait_worker($node, 30);
my $hm = $node->safe_psql('postgres', qq{
	CREATE TABLE mem (id int PRIMARY KEY, v int NOT NULL DEFAULT 0);
	INSERT INTO mem SELECT g, 0 FROM generate_series(1, 20000) g;
	SELECT cocohooks.register_hook('mem', 'post_save', '$recv->{url}/mem');
});
$w = start_writers($node, 'mem', 20000, 10);
wait_until('first updates', 20, sub { count_path('/mem') >= 50 });
my $bfm = $node->safe_psql('postgres', "SELECT cocohooks.backfill($hm, batch_rows => 200)");
ok(wait_backfill_done($node, $bfm, 120), 'memory mode: backfill done under 2 writers');
$w->{handle}->finish;
ok(wait_deliveries($node, '60 s'), 'the updates\' events finished');
check_latest($node, 'mem', '/mem', 'memory mode, 20,000 rows');

$node->stop;
done_testing();
