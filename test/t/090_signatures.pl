# Webhook signatures verify with the Standard Webhooks reference library
# (npm "standardwebhooks", run by test/verifier/receiver.mjs, installed by
# test/deps): hooks keyed with the receiver's secret always verify, also with
# custom headers, unicode and quotes in the body, on update, delete and retry;
# a hook keyed with another secret never does, and is logged as failed with
# the receiver's 401; a tampered body is rejected.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use File::Spec;
use HTTP::Tiny;
use IPC::Run;
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
my $secret = random_secret();
my $wrong_secret;
do { $wrong_secret = random_secret() } while $wrong_secret eq $secret;

# --- the verifying receiver (bounded wait for its port file; killed at END)
my $recv = start_verifier($secret);
my $url = $recv->{url};

# UTF8 database: the unicode text must reach the body as such
my $node = PostgreSQL::Test::Cluster->new('signatures');
$node->init(extra => [ '--encoding=UTF8', '--locale=C' ]);
$node->append_conf('postgresql.conf',
	    "max_connections = 30\n"
	  . "shared_preload_libraries = 'cocohooks'\n"
	  . "cocohooks.allowed_networks = '127.0.0.0/8, ::1'\n");
$node->start;
create_extension($node);

my %hook;
$node->safe_psql('postgres',
	'CREATE TABLE docs (id int PRIMARY KEY, title text, n int); '
	  . 'CREATE TABLE retried (id int PRIMARY KEY)');
sub register
{
	my ($name, $table, $event, $path, %opt) = @_;
	my $extra = join '', map { ", $_ => $opt{$_}" } sort keys %opt;
	$hook{$name} = $node->safe_psql('postgres',
		"SELECT cocohooks.register_hook('$table', '$event', '$url$path'$extra)");
	return;
}
register('plain', 'docs', 'post_save', '/plain', secret => "'$secret'");
register(
	'custom', 'docs', 'post_save', '/custom',
	secret => "'$secret'",
	headers => q{'{"X-Custom": "custom value", "Authorization": "Bearer t0k3n"}'});
register('delete', 'docs', 'post_delete', '/delete', secret => "'$secret'");
register('wrong', 'docs', 'post_save', '/wrong', secret => "'$wrong_secret'", max_retries => 0);
register(
	'retry', 'retried', 'post_save', '/fail-once/retry',
	secret => "'$secret'",
	max_retries => 1);

# unicode (2-, 3- and 4-byte UTF-8), quotes, backslash, newline, tab
my $title =
  "Gr\x{fc}\x{df}e \x{65e5}\x{672c}\x{8a9e} \x{1F389} \"double\" 'single' back\\slash\nline\ttab";
my $sql_title = join '', map {
	my $c = ord $_;
	$_ eq "'" ? "''"
	  : $_ eq '\\' ? '\\\\'
	  : $c == 10 ? '\n'
	  : $c == 9 ? '\t'
	  : $c > 0xffff ? sprintf('\U%08x', $c)
	  : $c > 0x7e ? sprintf('\u%04x', $c)
	  : $_
} split //, $title;

api_sql($node, "INSERT INTO docs VALUES (1, 'plain', 1)");
api_sql($node, "INSERT INTO docs VALUES (2, E'$sql_title', 2)");
api_sql($node, 'UPDATE docs SET n = 3 WHERE id = 1');
api_sql($node, 'DELETE FROM docs WHERE id = 2');
api_sql($node, 'INSERT INTO retried VALUES (1)');
is($node->safe_psql('postgres', "SELECT cocohooks.wait_for_deliveries('30 s')"),
	't', 'all deliveries finished');

my %recs = map {
	my $p = $_;
	($p => records($recv, sub { $_[0]{path} eq $p }))
} qw(/plain /custom /delete /wrong /fail-once/retry);

# records() gives the body as a character string: decode it as such
# (CocoHooksTest::body_of expects UTF-8 bytes)
sub json_body
{
	my ($rec) = @_;
	return JSON::PP->new->decode($rec->{body});
}

sub diag_failures
{
	my ($recs) = @_;
	diag("$_->{path} $_->{webhook_id}: $_->{error}") for grep { !$_->{verified} } @$recs;
	return;
}

# --- correctly keyed hooks: every request verified
my %expect = ('/plain' => 3, '/custom' => 3, '/delete' => 1);
for my $path (sort keys %expect)
{
	my $r = $recs{$path};
	is(scalar(@$r), $expect{$path}, "$path: $expect{$path} requests");
	is(scalar(grep { $_->{verified} } @$r), $expect{$path},
		"$path: all $expect{$path} verified by standardwebhooks")
	  or diag_failures($r);
	ok(!(grep { $_->{headers}{'webhook-signature'} !~ m{\Av1,[A-Za-z0-9+/]{43}=\z} } @$r),
		"$path: webhook-signature is v1,<base64 of 32 bytes>");
}
is(scalar(grep { $_->{event} ne 'post_save' } @{ $recs{'/plain'} }, @{ $recs{'/custom'} }),
	0, 'X-Hook-Event post_save on save hooks');
is(join(',', map { $_->{event} } @{ $recs{'/delete'} }), 'post_delete',
	'X-Hook-Event post_delete on the delete hook');
is(scalar(grep {
			($_->{headers}{'x-custom'} // '') eq 'custom value'
			  && ($_->{headers}{authorization} // '') eq 'Bearer t0k3n'
		} @{ $recs{'/custom'} }),
	3, 'custom headers sent alongside the signature');

my @ops = sort map {
	my $b = json_body($_);
	"$b->{document_id}:$b->{operation}"
} @{ $recs{'/plain'} };
is(join(' ', @ops), '1:create 1:update 2:create', 'save events: two creates and an update');
my ($uni) = grep { json_body($_)->{document_id} eq '2' } @{ $recs{'/plain'} };
ok($uni && $uni->{verified}, 'the row with unicode and quotes verified');
is($uni ? json_body($uni)->{document}{title} : undef,
	$title, 'its body carries the text unchanged');
my ($del) = @{ $recs{'/delete'} };
is($del ? json_body($del)->{document}{title} : undef,
	$title, 'the delete body carries it too');

# --- the hook keyed with another secret: every request rejected
my $wrong = $recs{'/wrong'};
is(scalar(@$wrong), 3, '/wrong: 3 requests');
is(scalar(grep { !$_->{verified} && ($_->{error} // '') =~ /No matching signature found/ } @$wrong),
	3, '/wrong: all 3 rejected by standardwebhooks (No matching signature found)');
is( $node->safe_psql('postgres',
		"SELECT count(*), count(*) FILTER (WHERE NOT success AND status_code = 401 AND attempts = 1) "
		  . "FROM cocohooks.deliveries WHERE hook_id = $hook{wrong}"),
	'3|3', 'deliveries: 3 failures of the wrongly keyed hook, status 401');
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM cocohooks.deliveries WHERE NOT success AND hook_id <> $hook{wrong}"),
	'0', 'deliveries: no failure of any correctly keyed hook');

# --- a retry is signed too (new timestamp, same webhook-id)
my $retry = $recs{'/fail-once/retry'};
is(scalar(@$retry), 2, 'retry hook: first attempt and one retry');
is(join(',', map { $_->{status} } @$retry), '401,200', 'answered 401, then 200');
is(scalar(grep { $_->{verified} } @$retry), 2, 'both attempts verified, the retry included')
  or diag_failures($retry);
is(scalar(keys %{ { map { $_->{webhook_id} => 1 } @$retry } }), 1, 'same webhook-id on the retry');
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM cocohooks.deliveries WHERE hook_id = $hook{retry} AND NOT success"),
	'0', 'retried delivery not logged as a failure');

# --- replaying a recorded request: verifies as is, not with a tampered body
my $orig = $recs{'/plain'}[0];
my %hdrs = map { $_ => $orig->{headers}{$_} }
  qw(content-type webhook-id webhook-timestamp webhook-signature x-hook-event);
my $http = HTTP::Tiny->new(timeout => 10);
my $raw = $orig->{body};
utf8::encode($raw);    # the bytes that were signed
my $tampered = $raw;
$tampered =~ s/"id": ?1\b/"id": 7/ or $tampered =~ s/\}\z/, "x": 1}/;
my $r1 = $http->post("$url/replay", { headers => \%hdrs, content => $raw });
my $r2 = $http->post("$url/tampered", { headers => \%hdrs, content => $tampered });
is($r1->{status}, 200, 'an exact replay of recorded headers and body verifies');
is($r2->{status}, 401, 'the same headers with a tampered body are rejected');
my ($t) = @{ records($recv, sub { $_[0]{path} eq '/tampered' }) };
like($t ? $t->{error} : '', qr/No matching signature found/,
	'rejected by standardwebhooks: No matching signature found');

$node->stop;
done_testing();
