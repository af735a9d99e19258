# cocohooks.rotate_secret (docs/guarantees.md §8): during the overlap every
# request carries two signatures, the new secret's first, each verified by
# the Standard Webhooks reference library (npm "standardwebhooks", in
# test/verifier) holding only that secret; after the overlap only the new
# one.  Requests sent after the rotation are signed with the secrets in force
# then, also for events written before it.  Ownership is checked as for the
# other functions.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use JSON::PP;
use MIME::Base64 qw(encode_base64);
use FindBin;
use lib "$FindBin::RealBin/../lib";
use CocoHooksTest;

sub random_secret
{
	my $bytes = join '', map { chr(int(rand(256))) } 1 .. 32;
	return 'whsec_' . encode_base64($bytes, '');
}
my $old = random_secret();
my $new = random_secret();
my $newer = random_secret();

# a receiver verifying each request with each of the three secrets on its own
my $verifier = start_verifier($old, $new, $newer);
my $log = $verifier->{log};
my $url = $verifier->{url};
my $verifier_dir = $verifier->{dir};

my $node = new_node('rotation');
$node->start;
create_extension($node);

$node->safe_psql('postgres', qq{
	CREATE ROLE owner_a LOGIN;
	CREATE ROLE other_b LOGIN;
	GRANT USAGE ON SCHEMA cocohooks TO owner_a, other_b;
	CREATE TABLE docs (id int PRIMARY KEY, v text);
	ALTER TABLE docs OWNER TO owner_a;
	GRANT INSERT ON docs TO other_b;
});
my $owner = $node->connstr('postgres') . ' user=owner_a';
my $hook = $node->safe_psql('postgres',
	"SELECT cocohooks.register_hook('docs', 'post_save', '$url/docs', secret => '$old', max_retries => 5)",
	connstr => $owner);

sub records_of
{
	my ($id) = @_;
	my @recs;
	open my $fh, '<', $log or return [];
	while (my $line = <$fh>)
	{
		next unless $line =~ /\n\z/;
		my $r = decode_json($line);
		push @recs, $r if decode_json($r->{body})->{document}{id} == $id;
	}
	close $fh;
	return \@recs;
}

sub write_and_get
{
	my ($id) = @_;
	api_sql($node, "INSERT INTO docs VALUES ($id, 'doc $id')");
	ok(wait_deliveries($node), "event $id finished");
	my $recs = records_of($id);
	is(scalar(@$recs), 1, "event $id received once");
	return $recs->[0] // {};
}

sub nsigs { return scalar(split / /, $_[0]{headers}{'webhook-signature'} // ''); }

# 1. before: one signature, the old secret's
my $r = write_and_get(1);
is(nsigs($r), 1, 'before the rotation: one signature');
is_deeply($r->{verified_by}, [ JSON::PP::true, JSON::PP::false, JSON::PP::false ],
	'verified with the old secret only');

# 2. ownership: only the table's owner (or a superuser) rotates
my ($ret, $o, $e) = $node->psql('postgres',
	"SELECT cocohooks.rotate_secret($hook, '$new')", connstr => $node->connstr('postgres') . ' user=other_b');
isnt($ret, 0, 'another role cannot rotate the secret');
like($e, qr/must be owner of table docs/, 'the error says why');

# 3. during the overlap (24 hours by default): two signatures, new first
is($node->safe_psql('postgres', "SELECT cocohooks.rotate_secret($hook, '$new')", connstr => $owner),
	't', 'the owner rotates the secret');
is($node->safe_psql('postgres',
		"SELECT secret = '$new', previous_secret = '$old', "
		  . "previous_secret_until BETWEEN now() + interval '23 hours 59 minutes' AND now() + interval '24 hours 1 minute' "
		  . "FROM cocohooks.hooks WHERE id = $hook"),
	't|t|t', 'the catalog keeps the previous secret for 24 hours');
$r = write_and_get(2);
is(nsigs($r), 2, 'during the overlap: two signatures');
is_deeply($r->{verified_by}, [ JSON::PP::true, JSON::PP::true, JSON::PP::false ],
	'the request verifies with the old secret alone and with the new one alone');
my @sigs = split / /, $r->{headers}{'webhook-signature'};
like($sigs[0], qr/^v1,[A-Za-z0-9+\/]{43}=$/, 'signatures in the Standard Webhooks form');
# which one is first: verify the first alone with the new secret
my $first_only = { %{$r}, headers => { %{ $r->{headers} }, 'webhook-signature' => $sigs[0] } };
is(check_alone($first_only), '[false,true,false]', 'the new secret\'s signature comes first');

# 4. an event written before the rotation, sent after it, is signed as of now
$node->safe_psql('postgres', qq{
	CREATE TABLE later (id int PRIMARY KEY, v text);
	SELECT cocohooks.register_hook('later', 'post_save', '$url/fail-once/later', secret => '$new', max_retries => 5);
});
my $later_hook = $node->safe_psql('postgres', "SELECT id FROM cocohooks.hooks WHERE collection = 'later'::regclass");
api_sql($node, "INSERT INTO later VALUES (1, 'written before')");
# the first attempt is answered 401 (fail-once); rotate before the retry
wait_until('first attempt', 10, sub { scalar(grep { $_->{path} =~ /later/ } @{ all_records() }) >= 1 });
$node->safe_psql('postgres', "SELECT cocohooks.rotate_secret($later_hook, '$newer')");
ok(wait_deliveries($node, '60 s'), 'retried and finished');
my @later = grep { $_->{path} =~ /later/ } @{ all_records() };
is(scalar(@later), 2, 'two attempts');
is_deeply($later[1]{verified_by}, [ JSON::PP::false, JSON::PP::true, JSON::PP::true ],
	'the retry after the rotation carries the new secret\'s signature and the previous one');

# 5. a zero overlap switches at once; a short one ends
is($node->safe_psql('postgres', "SELECT cocohooks.rotate_secret($hook, '$newer', '0')", connstr => $owner),
	't', 'rotation with no overlap');
$r = write_and_get(3);
is(nsigs($r), 1, 'no overlap: one signature');
is_deeply($r->{verified_by}, [ JSON::PP::false, JSON::PP::false, JSON::PP::true ], 'the newest secret\'s');
$node->safe_psql('postgres', "SELECT cocohooks.rotate_secret($hook, '$old', '2 seconds')", connstr => $owner);
$r = write_and_get(4);
is(nsigs($r), 2, 'within a 2-second overlap: two signatures');
sleep(3);
$r = write_and_get(5);
is(nsigs($r), 1, 'after it: one signature');
is_deeply($r->{verified_by}, [ JSON::PP::true, JSON::PP::false, JSON::PP::false ], 'the new secret\'s only');

# 6. bad input: nothing changes
for my $case (
	[ "rotate_secret($hook, 'nope')", qr/ERROR:  invalid secret\nDETAIL:  new_secret must be "whsec_" followed by the base64 of a key of 1 to \d+ bytes\.$/,
	  'a secret not of the whsec_ form, new_secret named' ],
	[ "rotate_secret($hook, NULL)", qr/new_secret must not be null/, 'a NULL secret' ],
	[ "rotate_secret(NULL, '$new')", qr/hook_id must not be null/, 'a NULL hook_id' ],
	[ "rotate_secret($hook, '$new', NULL)", qr/overlap must not be null/, 'a NULL overlap' ],
	[ "rotate_secret($hook, '$new', '-1 hour')", qr/invalid overlap "-01:00:00"/, 'a negative overlap' ])
{
	($ret, $o, $e) = $node->psql('postgres', "SELECT cocohooks.$case->[0]", connstr => $owner);
	like($e, $case->[1], "refused: $case->[2]");
}
is($node->safe_psql('postgres', "SELECT secret = '$old' FROM cocohooks.hooks WHERE id = $hook"),
	't', 'and the secret is unchanged');
is($node->safe_psql('postgres', "SELECT cocohooks.rotate_secret(999999, '$new')"),
	'f', 'an unknown hook: false');

$node->stop;
done_testing();

sub all_records
{
	my @recs;
	open my $fh, '<', $log or return [];
	while (my $line = <$fh>)
	{
		push @recs, decode_json($line) if $line =~ /\n\z/;
	}
	close $fh;
	return \@recs;
}

# Verifies a recorded request again with each secret alone, with the same
# library (node), and returns the JSON list of results.
sub check_alone
{
	my ($rec) = @_;
	my $script = q{
import swh from 'standardwebhooks';
const [rec, ...secrets] = JSON.parse(process.argv[2]);
const out = secrets.map((s) => {
	try { new swh.Webhook(s).verify(rec.body, rec.headers); return true; }
	catch (e) { return false; }
});
process.stdout.write(JSON.stringify(out));
};
	my ($res, $stderr) = ('', '');
	my $mjs = "$verifier_dir/check-alone.tmp.mjs";
	open my $fh, '>', $mjs or die;
	print $fh $script;
	close $fh;
	IPC::Run::run([ 'node', $mjs, encode_json([ $rec, $old, $new, $newer ]) ],
		'<', \undef, '>', \$res, '2>', \$stderr);
	unlink $mjs;
	diag($stderr) if $stderr;
	return $res;
}
