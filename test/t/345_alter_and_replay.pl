# cocohooks.alter_hook() and cocohooks.redeliver_failed().
#
# alter_hook changes a hook in place: its id stays, settings not given stay,
# clear sets nullable ones to NULL; every value is checked as register_hook
# checks it, with the same error; only the owner of the collection may.
# Events written before a change keep the settings they were written with
# (their settings version): a changed URL applies to events written after
# it, and events waiting to retry keep going to the old one.  Once they have
# failed, redeliver_failed sends them to the new one.
#
# redeliver_failed(hook, since, until) sends again every event whose
# delivery to the hook failed for good (finished_at) in [since, until]:
# once each, in the order of the original events, under the original
# webhook-id and body, not those the log shows delivered after all; it
# returns how many it queued.  Only the owner of the collection may.
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
# one connection to the receiver: requests arrive in the order they are
# sent; every success is logged, so the log can tell what was delivered
my $node = new_node('alter_replay', conf => <<'EOF');
cocohooks.retry_max_backoff = 1000
cocohooks.max_host_connections = 1
cocohooks.log_deliveries = 'all'
EOF
$node->start;
create_extension($node);
$node->safe_psql('postgres', q{
	CREATE ROLE alice LOGIN;
	CREATE ROLE bob LOGIN;
	GRANT USAGE ON SCHEMA cocohooks TO alice, bob;
	CREATE TABLE items (id int PRIMARY KEY, v text, note text);
	CREATE TABLE r (id int PRIMARY KEY, v text);
	ALTER TABLE items OWNER TO alice;
	ALTER TABLE r OWNER TO alice;
	GRANT ALL ON items, r TO bob;
});

sub as_role
{
	my ($role, $sql) = @_;
	return $node->psql('postgres', "SET ROLE $role; $sql");
}

sub on_path
{
	my ($path) = @_;
	return records($recv, sub { $_[0]{path} eq $path });
}

# --- 1. a changed URL: events waiting to retry keep the old one -----------
my $hook = $node->safe_psql('postgres', qq{
	SET ROLE alice;
	SELECT cocohooks.register_hook('items', 'post_save', '$recv->{url}/status/500',
		headers => '{"X-Version": "one"}', max_retries => 3)});
my $t_start = $node->safe_psql('postgres', 'SELECT clock_timestamp()');
api_sql($node, "INSERT INTO items SELECT g, 'before', NULL FROM generate_series(1, 3) g");
is(scalar(@{ wait_records($recv, 3, 20, sub { $_[0]{path} eq '/status/500' }) }), 3,
	'the three events were sent once and failed (500): they wait to retry');
is( $node->safe_psql('postgres', qq{
		SET ROLE alice;
		SELECT cocohooks.alter_hook($hook, url => '$recv->{url}/new',
			headers => '{"X-Version": "two"}')}),
	't', 'alter_hook() changes url and headers while they wait');
my $t_alter = time();
is( $node->safe_psql('postgres',
		"SELECT count(*), min(id), min(settings_version), min(url) FROM cocohooks.hooks"),
	"1|$hook|2|$recv->{url}/new", 'the same hook, its settings version 2, the new URL');
api_sql($node, "INSERT INTO items VALUES (4, 'after', NULL)");
ok(wait_deliveries($node, '60 s'), 'the deliveries finished');

my $old = on_path('/status/500');
is(scalar(@$old), 12, 'the waiting events went on to the old URL: 4 attempts each');
ok((grep { $_->{received_at} > $t_alter } @$old), 'some of them after the change');
is(scalar(grep { ($_->{headers}{'x-version'} // '') eq 'one' } @$old), 12,
	'all with the old header');
is(scalar(grep { body_of($_)->{document}{v} eq 'before' } @$old), 12,
	'all of them events written before the change');
my $new = on_path('/new');
is(scalar(@$new), 1, 'the event written after the change went to the new URL');
is(body_of($new->[0])->{document}{v}, 'after', 'it is that event') if @$new;
is($new->[0]{headers}{'x-version'}, 'two', 'with the new header') if @$new;
is( $node->safe_psql('postgres',
		"SELECT count(*), min(attempts) FROM cocohooks.deliveries WHERE hook_id = $hook AND NOT success"),
	'3|4', 'the three waiting events failed for good, logged under the same hook');

# once failed, redeliver_failed sends them to the new URL
my %first_body = map { ($_->{headers}{'webhook-id'} => $_->{body}) } @$old;
my @wids = map { $_->{headers}{'webhook-id'} } @$old[0 .. 2];
is( $node->safe_psql('postgres',
		"SET ROLE alice; SELECT cocohooks.redeliver_failed($hook, '$t_start')"),
	'3', 'redeliver_failed() queues the three failed events');
$new = wait_records($recv, 4, 20, sub { $_[0]{path} eq '/new' });
is(scalar(@$new), 4, 'they went to the new URL');
is_deeply([ sort map { $_->{headers}{'webhook-id'} } @$new[1 .. 3] ], [ sort @wids ],
	'under their original webhook-ids');
is(scalar(grep { $_->{body} eq ($first_body{ $_->{headers}{'webhook-id'} } // '') } @$new[1 .. 3]), 3,
	'with their original bodies, byte for byte');
ok(wait_deliveries($node), 'finished');

# --- 2. settings not given stay; clear sets nullable ones to NULL ---------
my $cols = 'url, headers, secret, timeout_ms, max_retries, columns, exclude_columns, '
  . 'ordering, retry_for, max_per_second, max_concurrent, enabled, event, collection';
my $full = $node->safe_psql('postgres', qq{
	SET ROLE alice;
	SELECT cocohooks.register_hook('items', 'post_delete', '$recv->{url}/full',
		headers => '{"X-A": "a"}', secret => 'whsec_c2VjcmV0', timeout_ms => 1234,
		max_retries => 5, columns => '{v}', exclude_columns => '{note}',
		ordering => 'none', retry_for => '2 hours', max_per_second => 2.5,
		max_concurrent => 7)});
sub row_of
{
	my ($id, $what) = @_;
	return $node->safe_psql('postgres', "SELECT $what FROM cocohooks.hooks WHERE id = $id");
}
my $before = row_of($full, $cols);
is( $node->safe_psql('postgres', "SET ROLE alice; SELECT cocohooks.alter_hook($full)"),
	't', 'alter_hook() with nothing to change');
is(row_of($full, "$cols, settings_version"), "$before|1", 'changes nothing');
$node->safe_psql('postgres',
	"SET ROLE alice; SELECT cocohooks.alter_hook($full, timeout_ms => 999)");
(my $expect = $before) =~ s/\|1234\|/|999|/;
is(row_of($full, $cols), $expect, 'timeout_ms given: only timeout_ms changed');
is(row_of($full, 'settings_version'), '2', 'a new settings version');
$node->safe_psql('postgres', qq{SET ROLE alice;
	SELECT cocohooks.alter_hook($full, max_concurrent => 9, columns => '{v,note}')});
is(row_of($full, 'timeout_ms, max_concurrent, columns, max_retries, retry_for, secret'),
	'999|9|{v,note}|5|02:00:00|whsec_c2VjcmV0', 'max_concurrent and columns given: the rest stay');
is(row_of($full, 'settings_version'), '2', 'the pace and columns are not versioned settings');
$node->safe_psql('postgres', qq{SET ROLE alice;
	SELECT cocohooks.alter_hook($full, clear => '{secret,max_retries,columns,exclude_columns,retry_for,filter,max_per_second,max_concurrent}')});
is( row_of($full, q{coalesce(secret, '-'), coalesce(max_retries::text, '-'),
		coalesce(columns::text, '-'), coalesce(exclude_columns::text, '-'),
		coalesce(retry_for::text, '-'), coalesce(filter, '-'),
		coalesce(max_per_second::text, '-'), coalesce(max_concurrent::text, '-'),
		url, timeout_ms, ordering, headers}),
	qq{-|-|-|-|-|-|-|-|$recv->{url}/full|999|none|{"X-A": "a"}},
	'clear sets the named settings to NULL, the rest stay');
is($node->safe_psql('postgres', "SELECT count(*) FROM cocohooks.hooks WHERE id = $full"), '1',
	'the same hook');

# a secret given ends a rotation's overlap, as rotate_secret with overlap 0
$node->safe_psql('postgres', qq{SET ROLE alice;
	SELECT cocohooks.alter_hook($full, secret => 'whsec_b25l');
	SELECT cocohooks.rotate_secret($full, 'whsec_dHdv', '1 hour')});
is(row_of($full, 'secret, previous_secret, previous_secret_until IS NOT NULL'),
	'whsec_dHdv|whsec_b25l|t', 'rotate_secret: an overlap');
$node->safe_psql('postgres',
	"SET ROLE alice; SELECT cocohooks.alter_hook($full, secret => 'whsec_dHdv')");
is(row_of($full, 'secret, previous_secret, previous_secret_until IS NOT NULL'),
	'whsec_dHdv|whsec_b25l|t', 'the same secret given: the overlap goes on');
$node->safe_psql('postgres',
	"SET ROLE alice; SELECT cocohooks.alter_hook($full, secret => 'whsec_dGhyZWU=')");
is(row_of($full, q{secret, coalesce(previous_secret, '-'), previous_secret_until IS NULL}),
	'whsec_dGhyZWU=|-|t', 'another secret: it alone signs, at once');

# --- 3. every value is checked as register_hook checks it ----------------
sub error_of
{
	my ($sql) = @_;
	my ($ret, $out, $err) = as_role('alice', $sql);
	return $ret == 0 ? 'no error' : ($err =~ /(ERROR:[^\n]*)/)[0];
}
my @bad = (
	[ url => q{'ftp://example.com/'} ],
	[ url => q{'http://10.1.2.3/'} ],
	[ headers => q{'{"Content-Type": "x"}'} ],
	[ headers => q{'[1]'} ],
	[ secret => q{'nope'} ],
	[ timeout_ms => '0' ],
	[ timeout_ms => '15001' ],
	[ max_retries => '-1' ],
	[ max_retries => '21' ],
	[ columns => q{'{}'} ],
	[ columns => q{'{nope}'} ],
	[ exclude_columns => q{'{id}'} ],
	[ ordering => q{'sometimes'} ],
	[ retry_for => q{'0'} ],
	[ retry_for => q{'-1 hour'} ],
	[ filter => q{'v = 1'} ],
	[ max_per_second => '0' ],
	[ max_concurrent => '0' ],
);
my $before_all = $node->safe_psql('postgres', 'SELECT md5(string_agg(h::text, \',\' ORDER BY id)) FROM cocohooks.hooks h');
for my $b (@bad)
{
	my ($arg, $value) = @$b;
	my %reg = (url => "'$recv->{url}/x'", $arg => $value);
	my $reg = error_of("SELECT cocohooks.register_hook(collection => 'items', event => 'post_save', "
		  . join(', ', map { "$_ => $reg{$_}" } sort keys %reg) . ')');
	my $alt = error_of("SELECT cocohooks.alter_hook($full, $arg => $value)");
	like($reg, qr/^ERROR:/, "register_hook refuses $arg => $value");
	is($alt, $reg, "alter_hook refuses it with the same error");
}
is($node->safe_psql('postgres', 'SELECT md5(string_agg(h::text, \',\' ORDER BY id)) FROM cocohooks.hooks h'),
	$before_all, 'and nothing changed');
my ($ret, $out, $err) = as_role('alice', "SELECT cocohooks.alter_hook($full, retry_for => '0')");
like($err, qr/HINT:\s+Name retry_for in clear/, 'its hint says how to have no time limit here');

# clear's own errors
like(error_of("SELECT cocohooks.alter_hook($full, max_retries => 3, clear => '{max_retries}')"),
	qr/ERROR:\s+max_retries is both given and cleared/, 'a setting both given and cleared');
like(error_of("SELECT cocohooks.alter_hook($full, clear => '{url}')"),
	qr/ERROR:\s+url cannot be cleared/, 'url cannot be cleared');
like(error_of("SELECT cocohooks.alter_hook($full, clear => '{timeout_ms}')"),
	qr/ERROR:\s+timeout_ms cannot be cleared/, 'nor timeout_ms');
like(error_of("SELECT cocohooks.alter_hook($full, clear => '{bogus}')"),
	qr/ERROR:\s+unknown setting "bogus" in clear/, 'an unknown setting in clear');
like(error_of("SELECT cocohooks.alter_hook($full, clear => '{NULL}')"),
	qr/ERROR:\s+clear must not contain NULL/, 'NULL in clear');
like(error_of('SELECT cocohooks.alter_hook(NULL)'), qr/ERROR:\s+hook_id must not be null/,
	'hook_id NULL');
is($node->safe_psql('postgres', "SELECT cocohooks.alter_hook(999999, timeout_ms => 5)"), 'f',
	'an unknown hook: false');

# ownership: bob may write alice's tables, not change their hooks
($ret, $out, $err) = as_role('bob', "SELECT cocohooks.alter_hook($full, timeout_ms => 5)");
isnt($ret, 0, 'a non-owner cannot alter the hook');
like($err, qr/ERROR:\s+must be owner of table items/, 'ownership error');
is(row_of($full, 'timeout_ms'), '999', 'nothing changed');

# --- 4. redeliver_failed over a time range --------------------------------
my $rh = $node->safe_psql('postgres', qq{SET ROLE alice;
	SELECT cocohooks.register_hook('r', 'post_save', '$recv->{url}/status/500', max_retries => 0)});
sub now_ts { return $node->safe_psql('postgres', 'SELECT clock_timestamp()'); }
sub set_url
{
	my ($path) = @_;
	$node->safe_psql('postgres',
		"SET ROLE alice; SELECT cocohooks.alter_hook($rh, url => '$recv->{url}$path')");
	return;
}
sub failed_wid
{
	my ($doc, $op) = @_;
	return $node->safe_psql('postgres', qq{
		SELECT webhook_id FROM cocohooks.deliveries WHERE hook_id = $rh AND NOT success
		   AND document_id = '$doc' AND payload->>'operation' = '$op' ORDER BY id LIMIT 1});
}

# A: failed before since
api_sql($node, "INSERT INTO r VALUES (1, 'a'), (2, 'a')");
ok(wait_deliveries($node), 'A failed');
my $since = now_ts();
# B: failed inside the range, three transactions
api_sql($node, "INSERT INTO r VALUES (3, 'b'), (4, 'b')");
api_sql($node, "INSERT INTO r VALUES (5, 'b')");
api_sql($node, "UPDATE r SET v = 'b2' WHERE id = 3");
ok(wait_deliveries($node), 'B failed');
my %b = (c3 => failed_wid(3, 'create'), c4 => failed_wid(4, 'create'),
	c5 => failed_wid(5, 'create'), u3 => failed_wid(3, 'update'));
# create 4 redelivered and failed again: two failed rows, one event
$node->safe_psql('postgres', qq{SET ROLE alice; SELECT cocohooks.redeliver(id)
	FROM cocohooks.deliveries WHERE webhook_id = '$b{c4}'});
ok(wait_deliveries($node), 'create 4 failed again');
# create 5 redelivered and delivered: the log shows it delivered after all
set_url('/ok');
$node->safe_psql('postgres', qq{SET ROLE alice; SELECT cocohooks.redeliver(id)
	FROM cocohooks.deliveries WHERE webhook_id = '$b{c5}'});
ok(wait_deliveries($node), 'create 5 delivered');
set_url('/status/500');
is( $node->safe_psql('postgres', qq{
		SELECT string_agg(success::text, ',' ORDER BY id) FROM cocohooks.deliveries
		 WHERE webhook_id IN ('$b{c4}', '$b{c5}')}),
	'false,false,false,true', 'the log: create 4 failed twice, create 5 failed then succeeded');
my $until = now_ts();
# C: failed after until
api_sql($node, "INSERT INTO r VALUES (6, 'c')");
ok(wait_deliveries($node), 'C failed');
set_url('/replayed');

my %orig = map { ($_->{headers}{'webhook-id'} => $_->{body}) } @{ on_path('/status/500') };
is( $node->safe_psql('postgres',
		"SET ROLE alice; SELECT cocohooks.redeliver_failed($rh, '$since', '$until')"),
	'3', 'redeliver_failed() over the range queues 3 events');
my $replayed = wait_records($recv, 3, 20, sub { $_[0]{path} eq '/replayed' });
ok(wait_deliveries($node), 'finished');
usleep(300_000);
$replayed = on_path('/replayed');
is_deeply([ map { $_->{headers}{'webhook-id'} } @$replayed ], [ @b{qw(c3 c4 u3)} ],
	'create 3, create 4 once, update 3: in the order of the events, under their webhook-ids; '
	  . 'not create 5, delivered after all; nothing from before since or after until');
is(scalar(grep { $_->{body} eq ($orig{ $_->{headers}{'webhook-id'} } // '') } @$replayed), 3,
	'each body byte for byte as first sent');

# until defaults to now(): what failed since $until is C's event
is( $node->safe_psql('postgres',
		"SET ROLE alice; SELECT cocohooks.redeliver_failed($rh, '$until')"),
	'1', 'since alone: up to now');
$replayed = wait_records($recv, 4, 20, sub { $_[0]{path} eq '/replayed' });
is(body_of($replayed->[3])->{document}{id}, 6, 'C\'s event') if @$replayed == 4;
ok(wait_deliveries($node), 'finished');
is( $node->safe_psql('postgres',
		"SET ROLE alice; SELECT cocohooks.redeliver_failed($rh, '$since', '$until')"),
	'0', 'again over the same range: nothing, the log shows them delivered now');

# rolled back: nothing sent
set_url('/rolledback');
is( $node->safe_psql('postgres', qq{SET ROLE alice; BEGIN;
		SELECT cocohooks.redeliver_failed($rh, '-infinity', 'infinity'); ROLLBACK;}),
	'2', 'in a transaction that rolls back: A\'s two (the rest were delivered)');
api_sql($node, "INSERT INTO r VALUES (7, 'marker')");
ok(wait_records($recv, 1, 20, sub { $_[0]{path} eq '/rolledback' }), 'a later event arrives');
ok(wait_deliveries($node), 'finished');
is(scalar(@{ on_path('/rolledback') }), 1, 'only it: the rolled-back redeliveries were not sent');

# owner only, bad arguments
($ret, $out, $err) = as_role('bob', "SELECT cocohooks.redeliver_failed($rh, '-infinity')");
isnt($ret, 0, 'a non-owner cannot redeliver the hook\'s failures');
like($err, qr/ERROR:\s+must be owner of table r/, 'ownership error');
like(error_of("SELECT cocohooks.redeliver_failed($rh, '$until', '$since')"),
	qr/ERROR:\s+since must not be later than until/, 'since after until refused');
like(error_of("SELECT cocohooks.redeliver_failed($rh, NULL)"),
	qr/ERROR:\s+since must not be null/, 'since NULL refused');
like(error_of("SELECT cocohooks.redeliver_failed($rh, '-infinity', NULL)"),
	qr/ERROR:\s+until must not be null/, 'until NULL refused');
like(error_of("SELECT cocohooks.redeliver_failed(NULL, '-infinity')"),
	qr/ERROR:\s+hook_id must not be null/, 'hook_id NULL refused');
like(error_of("SELECT cocohooks.redeliver_failed(999999, '-infinity')"),
	qr/ERROR:\s+hook 999999 does not exist/, 'an unknown hook refused');

$node->stop;
done_testing();
