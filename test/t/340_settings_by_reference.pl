# Events name their hooks' settings versions, and carry no secret and no
# header value (docs/guarantees.md §13): the WAL written for hooked rows
# holds neither a hook's signing key nor its header values, read raw and as
# a CDC consumer reads it (test_decoding, where installed); the worker
# takes URL, headers, timeout and retries from the catalog and signs with
# the secrets in force.  A change of URL or headers applies to events
# written after it commits; events written before it, or before the hook
# was unregistered, are delivered as they were written, also from a
# transaction still open when the change committed, in wal and in memory
# mode; the old settings are deleted once no event can name them.  Events
# whose settings are gone fail, logged with their payload.  Messages the
# library writes for a catalog not yet updated to 0.3.0 are still read.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Digest::SHA;
use MIME::Base64;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use CocoHooksTest;

my $recv = start_receiver();
my $node = new_node('byref',
	conf => "wal_level = logical\nmax_replication_slots = 10\ncocohooks.retry_max_backoff = 1000\n");
$node->start;
create_extension($node);
$node->safe_psql('postgres', q{
	CREATE TABLE items (id int PRIMARY KEY, title text);
	CREATE TABLE docs (id int PRIMARY KEY, v text);
	CREATE TABLE notes (id int PRIMARY KEY, v text);
});

sub random_bytes { return join '', map { chr(int(rand(256))) } 1 .. $_[0]; }

sub signature
{
	my ($rec, $key) = @_;
	return 'v1,'
	  . MIME::Base64::encode_base64(
		Digest::SHA::hmac_sha256(
			"$rec->{headers}{'webhook-id'}.$rec->{headers}{'webhook-timestamp'}.$rec->{body}", $key),
		'');
}

# The raw bytes of the WAL from one position to another (page headers and
# all), read from the segment files.
sub wal_between
{
	my ($from, $to) = @_;
	my $bytes = '';
	my $segsize = $node->safe_psql('postgres',
		"SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'");
	my ($first, $last) = split /\|/, $node->safe_psql('postgres',
		"SELECT div('$from'::pg_lsn - '0/0', $segsize), div('$to'::pg_lsn - '0/0', $segsize)");
	for my $seg ($first .. $last)
	{
		my ($file) = $node->safe_psql('postgres',
			"SELECT pg_walfile_name('0/0'::pg_lsn + (${seg}::numeric * $segsize + 1))");
		my $start = $seg == $first
		  ? $node->safe_psql('postgres', "SELECT ('$from'::pg_lsn - '0/0') % $segsize") : 0;
		my $end = $seg == $last
		  ? $node->safe_psql('postgres', "SELECT ('$to'::pg_lsn - '0/0') % $segsize") : $segsize;
		open my $fh, '<:raw', $node->data_dir . "/pg_wal/$file" or die "$file: $!";
		seek($fh, $start, 0);
		read($fh, my $chunk, $end - $start);
		close $fh;
		$bytes .= $chunk;
	}
	return $bytes;
}

sub occurrences
{
	my ($haystack, $needle) = @_;
	my ($n, $at) = (0, 0);
	while (($at = index($haystack, $needle, $at)) >= 0) { $n++; $at++; }
	return $n;
}

# --- 1. no secret and no header value in the WAL --------------------------
my $key = random_bytes(32);
my $secret = 'whsec_' . MIME::Base64::encode_base64($key, '');
my $token = 'tok' . join('', map { sprintf '%02x', int(rand(256)) } 1 .. 24);
my $hook = $node->safe_psql('postgres', qq{
	SELECT cocohooks.register_hook('items', 'post_save', '$recv->{url}/items',
		headers => '{"Authorization": "Bearer $token"}', secret => '$secret')});
my $pkglibdir = $node->config_data('--pkglibdir');
my $decoding = -e "$pkglibdir/test_decoding.so";
$node->safe_psql('postgres',
	"SELECT pg_create_logical_replication_slot('cdc', 'test_decoding')")
  if $decoding;
# The catalog row is in the WAL as any row is, and so is its page whenever
# it is written again after a checkpoint (a full-page image), hint bits
# included where data checksums are on: vacuumed and read once before, it is
# not written while the events are.
$node->safe_psql('postgres', 'VACUUM cocohooks.hooks');
$node->safe_psql('postgres', 'SELECT count(*) FROM cocohooks.hooks');
my $from = $node->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
for my $i (1 .. 20)
{
	api_sql($node, "INSERT INTO items VALUES ($i, 'marker-$i')");
}
ok(wait_deliveries($node), 'the 20 events are delivered');
my $to = $node->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
my $items = records($recv, sub { $_[0]{path} eq '/items' });
is(scalar @$items, 20, 'the receiver got 20 requests');
is(scalar(grep { ($_->{headers}{authorization} // '') eq "Bearer $token" } @$items), 20,
	'each with the hook\'s header, from the catalog');
is(scalar(grep { ($_->{headers}{'webhook-signature'} // '') eq signature($_, $key) } @$items), 20,
	'each signed with the hook\'s secret, from the catalog');

my $wal = wal_between($from, $to);
ok(occurrences($wal, 'marker-') >= 20, 'the WAL read holds the 20 rows');
is(occurrences($wal, $key), 0, 'the WAL of the events holds no signing key');
is(occurrences($wal, substr($secret, 6)), 0, 'nor the secret as registered');
is(occurrences($wal, $token), 0, 'nor the header value');
SKIP:
{
	skip 'test_decoding is not installed', 4 unless $decoding;
	my $cdc = $node->safe_psql('postgres',
		"SELECT encode(string_agg(data, '\\x0a'::bytea), 'hex') FROM pg_logical_slot_get_binary_changes('cdc', NULL, NULL)");
	$cdc = pack('H*', $cdc);
	is(occurrences($cdc, 'prefix: cocohooks, sz:'), 20,
		'a CDC consumer (test_decoding) reads the 20 event messages');
	is(occurrences($cdc, $key), 0, 'none holds the signing key');
	is(occurrences($cdc, $token), 0, 'none holds the header value');
	is(occurrences($cdc, 'whsec_'), 0, 'none holds a secret');
	$node->safe_psql('postgres', "SELECT pg_drop_replication_slot('cdc')");
}

# --- 2. a changed URL and header apply to events written after ------------
sub docs_hook_versions
{
	my ($id) = @_;
	return $node->safe_psql('postgres',
		"SELECT coalesce(string_agg(settings_version::text, ',' ORDER BY settings_version), '') "
		  . "FROM cocohooks.hook_versions WHERE hook_id = $id");
}
my $docs = $node->safe_psql('postgres', qq{
	SELECT cocohooks.register_hook('docs', 'post_save', '$recv->{url}/v1',
		headers => '{"X-Version": "one"}', max_retries => 20, retry_for => '1 hour')});
stop_receiver($recv);
api_sql($node, "INSERT INTO docs SELECT g, 'before' FROM generate_series(1, 5) g");
$node->safe_psql('postgres', qq{
	UPDATE cocohooks.hooks SET url = '$recv->{url}/v2', headers = '{"X-Version": "two"}'
	 WHERE id = $docs});
is($node->safe_psql('postgres', "SELECT settings_version FROM cocohooks.hooks WHERE id = $docs"),
	'2', 'the change makes settings version 2');
is(docs_hook_versions($docs), '1', 'and keeps version 1');
api_sql($node, "INSERT INTO docs SELECT g, 'after' FROM generate_series(6, 10) g");
$recv = restart_receiver($recv);
ok(wait_deliveries($node, '60 s'), 'the 10 events are delivered');
my %where;
for my $r (@{ records($recv, sub { $_[0]{path} =~ m{^/v[0-9]$} }) })
{
	my $b = body_of($r);
	$where{ $b->{document}{v} }{"$r->{path} " . ($r->{headers}{'x-version'} // '')}++;
}
is_deeply($where{before}, { '/v1 one' => 5 }, 'events written before the change went with version 1');
is_deeply($where{after}, { '/v2 two' => 5 }, 'events written after it went with version 2');
ok(wait_until('version 1 forgotten', 30, sub { docs_hook_versions($docs) eq '' }),
	'once they are delivered, version 1 is deleted');

# --- 3. a transaction open across a change keeps the version it read ------
my $writer = $node->background_psql('postgres', on_error_stop => 0);
$writer->query_safe('SET cocohooks.api_session = on');
$writer->query_safe('BEGIN');
$writer->query_safe("INSERT INTO docs VALUES (11, 'open')");
$node->safe_psql('postgres', qq{
	UPDATE cocohooks.hooks SET url = '$recv->{url}/v3', headers = '{"X-Version": "three"}'
	 WHERE id = $docs});
api_sql($node, "INSERT INTO docs VALUES (12, 'later')");
ok(wait_deliveries($node), 'the event written after the change is delivered');
sleep(3);    # a few steps of the worker's retirement
is(docs_hook_versions($docs), '2',
	'version 2 is kept while a transaction that may have read it is open');
$writer->query_safe('COMMIT');
$writer->quit;
ok(wait_deliveries($node), 'the open transaction\'s event is delivered');
my %late;
for my $r (@{ records($recv, sub { $_[0]{path} =~ m{^/v[0-9]$} }) })
{
	my $b = body_of($r);
	$late{ $b->{document}{v} } = "$r->{path} " . ($r->{headers}{'x-version'} // '');
}
is($late{open}, '/v2 two', 'it went with the version its transaction read');
is($late{later}, '/v3 three', 'the one written after the change with the new one');
ok(wait_until('version 2 forgotten', 30, sub { docs_hook_versions($docs) eq '' }),
	'then version 2 is deleted');

# --- 4. an unregistered hook's last events, signed with its secret --------
my $nkey = random_bytes(24);
my $nsecret = 'whsec_' . MIME::Base64::encode_base64($nkey, '');
my $notes = $node->safe_psql('postgres', qq{
	SELECT cocohooks.register_hook('notes', 'post_save', '$recv->{url}/notes',
		headers => '{"X-Notes": "yes"}', secret => '$nsecret', max_retries => 20)});
stop_receiver($recv);
api_sql($node, "INSERT INTO notes SELECT g, 'n' FROM generate_series(1, 5) g");
$node->safe_psql('postgres', "SELECT cocohooks.unregister_hook($notes)");
is($node->safe_psql('postgres',
		"SELECT unregistered AND secret = '$nsecret' FROM cocohooks.hook_versions WHERE hook_id = $notes"),
	't', 'unregistering keeps the hook\'s last settings, with its secret');
$recv = restart_receiver($recv);
ok(wait_deliveries($node, '60 s'), 'the unregistered hook\'s events are delivered');
my $nrecs = records($recv, sub { $_[0]{path} eq '/notes' });
is(scalar @$nrecs, 5, 'all 5 of them');
is(scalar(grep { ($_->{headers}{'x-notes'} // '') eq 'yes'
			  && ($_->{headers}{'webhook-signature'} // '') eq signature($_, $nkey) } @$nrecs),
	5, 'with its headers, signed with its secret');
ok(wait_until('unregistered hook forgotten', 30, sub { docs_hook_versions($notes) eq '' }),
	'then its settings are deleted');
is($node->safe_psql('postgres', 'SELECT count(*) FROM cocohooks.hook_versions WHERE secret IS NOT NULL'),
	'0', 'no secret is left behind');

# --- 5. settings gone from the catalog: the delivery fails, logged ---------
my $gone = $node->safe_psql('postgres', qq{
	SELECT cocohooks.register_hook('notes', 'post_save', '$recv->{url}/gone', max_retries => 20)});
stop_receiver($recv);
api_sql($node, "INSERT INTO notes VALUES (100, 'lost settings')");
$node->safe_psql('postgres', "SELECT cocohooks.unregister_hook($gone)");
$node->safe_psql('postgres', "DELETE FROM cocohooks.hook_versions WHERE hook_id = $gone");
# the running worker still holds the settings of the event it took: a new
# one reads the event again from the WAL
$node->restart;
wait_worker($node, 30);
$recv = restart_receiver($recv);
ok(wait_deliveries($node, '60 s'), 'the event whose settings are gone is finished');
is($node->safe_psql('postgres', qq{
	SELECT success::text || ' ' || (payload IS NOT NULL)::text || ' ' || error
	  FROM cocohooks.deliveries WHERE hook_id = $gone}),
	"false true not sent: settings version 1 of hook $gone is not in the catalog",
	'it failed, logged with its payload and why');

# --- 6. memory mode: the same promise ---------------------------------------
$node->append_conf('postgresql.conf', "cocohooks.durability = memory\n");
$node->restart;
wait_worker($node, 30);
is($node->safe_psql('postgres', 'SELECT durability FROM cocohooks.stats'), 'memory', 'memory mode');
stop_receiver($recv);
api_sql($node, "INSERT INTO docs SELECT g, 'mem before' FROM generate_series(21, 23) g");
$node->safe_psql('postgres', qq{
	UPDATE cocohooks.hooks SET url = '$recv->{url}/v4', headers = '{"X-Version": "four"}'
	 WHERE id = $docs});
api_sql($node, "INSERT INTO docs SELECT g, 'mem after' FROM generate_series(24, 26) g");
$recv = restart_receiver($recv);
ok(wait_deliveries($node, '60 s'), 'memory mode: the 6 events are delivered');
my %mem;
for my $r (@{ records($recv, sub { $_[0]{path} =~ m{^/v[0-9]$} }) })
{
	my $b = body_of($r);
	$mem{ $b->{document}{v} }{"$r->{path} " . ($r->{headers}{'x-version'} // '')}++
	  if $b->{document}{v} =~ /^mem/;
}
is_deeply($mem{'mem before'}, { '/v3 three' => 3 }, 'memory mode: events before the change with the old version');
is_deeply($mem{'mem after'}, { '/v4 four' => 3 }, 'memory mode: events after it with the new one');
ok(wait_until('memory mode version forgotten', 30, sub { docs_hook_versions($docs) eq '' }),
	'memory mode: then the old version is deleted');

# --- 7. a catalog not yet updated: messages with whole settings -------------
$node->append_conf('postgresql.conf', "cocohooks.durability = wal\n");
$node->restart;
$node->safe_psql('postgres', 'CREATE DATABASE old');
$node->safe_psql('old', q{
	CREATE EXTENSION cocohooks VERSION '0.2.0';
	CREATE TABLE t (id int PRIMARY KEY);
});
my $okey = random_bytes(32);
my $osecret = 'whsec_' . MIME::Base64::encode_base64($okey, '');
$node->safe_psql('old', qq{
	SELECT cocohooks.register_hook('t', 'post_save', '$recv->{url}/old',
		headers => '{"X-Old": "yes"}', secret => '$osecret', max_retries => 20)});
stop_receiver($recv);
$node->safe_psql('old', 'SET cocohooks.api_session = on; INSERT INTO t SELECT generate_series(1, 3)');
$node->safe_psql('old', 'ALTER EXTENSION cocohooks UPDATE');
$node->safe_psql('old', 'SET cocohooks.api_session = on; INSERT INTO t SELECT generate_series(4, 6)');
$recv = restart_receiver($recv);
ok(wait_until('old database delivered', 60, sub {
			@{ records($recv, sub { $_[0]{path} eq '/old' }) } >= 6 }),
	'events written before and after ALTER EXTENSION UPDATE are delivered');
my $orecs = records($recv, sub { $_[0]{path} eq '/old' });
is(scalar(grep { ($_->{headers}{'x-old'} // '') eq 'yes'
			  && ($_->{headers}{'webhook-signature'} // '') eq signature($_, $okey) } @$orecs),
	6, 'all 6 with their headers and signature');

done_testing();
