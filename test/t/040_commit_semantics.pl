# post_* events of transactions that abort at commit never arrive;
# PREPARE TRANSACTION with pending post_* events works in wal mode, the
# default, delivering at COMMIT PREPARED (memory mode refuses it:
# 180_memory_mode.pl).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use CocoHooksTest;

my $recv = start_receiver();
my $node = new_node('commit', conf => "max_prepared_transactions = 2\n");
$node->start;
create_extension($node);

$node->safe_psql('postgres', qq{
	CREATE TABLE oncall (id int PRIMARY KEY, doctor text, on_duty bool);
	INSERT INTO oncall VALUES (1, 'alice', true), (2, 'bob', true);
	SELECT cocohooks.register_hook('oncall', 'pre_save', '$recv->{url}/oncall/pre');
	SELECT cocohooks.register_hook('oncall', 'post_save', '$recv->{url}/oncall/post');
});

# --- write skew under SERIALIZABLE: the second COMMIT fails
my $s1 = $node->background_psql('postgres', on_error_stop => 0);
my $s2 = $node->background_psql('postgres', on_error_stop => 0);
for my $s ($s1, $s2)
{
	$s->query_safe('SET cocohooks.api_session = on');
	$s->query_safe('BEGIN ISOLATION LEVEL SERIALIZABLE');
	$s->query_safe('SELECT count(*) FROM oncall WHERE on_duty');
}
$s1->query_safe('UPDATE oncall SET on_duty = false WHERE id = 1');
$s2->query_safe('UPDATE oncall SET on_duty = false WHERE id = 2');
my ($out1, $err1) = $s1->query('COMMIT');
is($err1, 0, 'first COMMIT succeeds');
my ($out2, $err2) = $s2->query('COMMIT');
is($err2, 1, 'second COMMIT fails');
like($s2->{stderr}, qr/could not serialize access/, 'with a serialization failure');
$s1->quit;
$s2->quit;
is($node->safe_psql('postgres', q{SELECT string_agg(id || ':' || on_duty, ',' ORDER BY id) FROM oncall}),
	'1:false,2:true', 'only the first transaction took effect');

ok(wait_deliveries($node), 'wait_for_deliveries');
my %got;
for my $r (@{ records($recv) })
{
	my $b = body_of($r);
	next unless $r->{path} =~ m{^/oncall/};
	$got{"$b->{event} $b->{document}{id}"}++;
}
is($got{'pre_save 1'}, 1, 'pre_save of the committed transaction arrived');
is($got{'pre_save 2'}, 1, 'pre_save of the failed transaction arrived (session was tagged)');
is($got{'post_save 1'}, 1, 'post_save of the committed transaction arrived');
ok(!exists $got{'post_save 2'}, 'post_save of the transaction that failed at commit never arrived');

# --- deferred foreign key violated at COMMIT
$node->safe_psql('postgres', qq{
	CREATE TABLE parent (id int PRIMARY KEY);
	CREATE TABLE child (id int PRIMARY KEY,
		parent_id int REFERENCES parent DEFERRABLE INITIALLY DEFERRED);
	INSERT INTO parent VALUES (1);
	SELECT cocohooks.register_hook('child', 'post_save', '$recv->{url}/child');
	SELECT cocohooks.register_hook('child', 'post_delete', '$recv->{url}/child');
	SELECT cocohooks.register_hook('parent', 'post_delete', '$recv->{url}/parent');
});
my ($ret, $out, $err) = $node->psql('postgres', q{
	SET cocohooks.api_session = on;
	BEGIN;
	INSERT INTO child VALUES (10, 999);
	INSERT INTO child VALUES (11, 1);
	COMMIT;
});
isnt($ret, 0, 'COMMIT with a deferred FK violation fails');
like($err, qr/violates foreign key constraint/, 'deferred FK error at commit');

# a delete that fails at commit too
$node->safe_psql('postgres', 'INSERT INTO child VALUES (1, 1)');
($ret, $out, $err) = $node->psql('postgres', q{
	SET cocohooks.api_session = on;
	BEGIN;
	SET CONSTRAINTS ALL DEFERRED;
	DELETE FROM child WHERE id = 1;
	INSERT INTO child VALUES (12, 1);
	DELETE FROM parent;
	COMMIT;
});
like($err, qr/violates foreign key constraint/, 'deferred FK error at commit after deletes');

# control: a valid transaction on the same tables is delivered
api_sql($node, 'BEGIN; INSERT INTO child VALUES (20, 1); COMMIT;');
ok(wait_deliveries($node), 'wait_for_deliveries');
my @child = map { my $b = body_of($_); "$b->{event} $b->{document_id}" }
  @{ records($recv, sub { $_[0]{path} eq '/child' || $_[0]{path} eq '/parent' }) };
is_deeply(\@child, ['post_save 20'],
	'no post_* event of the transactions that failed at COMMIT; the valid one arrived');

# --- PREPARE TRANSACTION with pending post_* events
($ret, $out, $err) = $node->psql('postgres', q{
	SET cocohooks.api_session = on;
	BEGIN;
	INSERT INTO child VALUES (30, 1);
	PREPARE TRANSACTION 'with_events';
});
is($ret, 0, 'PREPARE TRANSACTION with pending post_* events works in wal mode') or diag($err);
ok(wait_deliveries($node), 'wait_for_deliveries with a prepared transaction');
is(scalar(@{ records($recv, sub { $_[0]{path} eq '/child' }) }), 1,
	'nothing of the prepared transaction before COMMIT PREPARED');
$node->safe_psql('postgres', "COMMIT PREPARED 'with_events'");
ok(wait_deliveries($node), 'wait_for_deliveries after COMMIT PREPARED');
is_deeply([ map { body_of($_)->{document_id} } @{ records($recv, sub { $_[0]{path} eq '/child' }) } ],
	[ '20', '30' ], 'COMMIT PREPARED delivers its post_save');

# without pending events (untagged session) two-phase commit works
($ret, $out, $err) = $node->psql('postgres', q{
	BEGIN;
	INSERT INTO child VALUES (31, 1);
	PREPARE TRANSACTION 'no_events';
	COMMIT PREPARED 'no_events';
});
is($ret, 0, 'PREPARE TRANSACTION without pending events works') or diag($err);

ok(wait_deliveries($node), 'wait_for_deliveries');
is(scalar(@{ records($recv, sub { $_[0]{path} eq '/child' }) }), 2,
	'no delivery from the untagged prepared transaction');

$node->stop;
done_testing();
