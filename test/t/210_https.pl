# HTTPS deliveries (docs/guarantees.md §8): certificates and host names are
# always verified; cocohooks.ca_file adds a private CA; TLS 1.2 at least;
# kept-alive connections and TLS sessions are reused.  Receivers speak TLS on
# loopback with certificates this test makes with openssl.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use FindBin;
use lib "$FindBin::RealBin/../lib";
use CocoHooksTest;

my $dir = PostgreSQL::Test::Utils::tempdir('tls');

make_test_ca($dir, 'ca');
make_test_ca($dir, 'otherca');
make_test_cert($dir, 'good', 'ca', 'DNS:localhost,IP:127.0.0.1');
make_test_cert($dir, 'untrusted', 'otherca', 'DNS:localhost,IP:127.0.0.1');
make_test_cert($dir, 'wronghost', 'ca', 'DNS:wrong.example');

my %recv;
$recv{$_} = start_receiver(tls_cert => "$dir/$_.pem", tls_key => "$dir/$_.key")
  for qw(good untrusted wronghost);
like($recv{good}{url}, qr{^https://localhost:\d+$}, 'TLS receivers on loopback');

my $node = new_node('https', conf => qq{
cocohooks.max_host_connections = 4
});
$node->start;
create_extension($node);

$node->safe_psql('postgres', qq{
	CREATE TABLE docs (id int PRIMARY KEY, v text);
	SELECT cocohooks.register_hook('docs', 'post_save', '$recv{good}{url}/good', max_retries => 0);
	CREATE TABLE u (id int PRIMARY KEY);
	SELECT cocohooks.register_hook('u', 'post_save', '$recv{untrusted}{url}/untrusted', max_retries => 0);
	CREATE TABLE w (id int PRIMARY KEY);
	SELECT cocohooks.register_hook('w', 'post_save', '$recv{wronghost}{url}/wronghost', max_retries => 0);
});

sub error_of
{
	my ($table, $id) = @_;
	return $node->safe_psql('postgres',
		"SELECT coalesce(error, 'status ' || status_code) FROM cocohooks.deliveries "
		  . "WHERE collection = '$table' AND document_id = '$id' ORDER BY id DESC LIMIT 1");
}

# 1. without ca_file, the private CA is not trusted
api_sql($node, "INSERT INTO docs VALUES (1, 'no ca_file')");
ok(wait_deliveries($node), 'finished');
like(error_of('docs', 1), qr/certificate/i,
	'a certificate no trusted CA signed: failed with the certificate error');
is(scalar(@{ records($recv{good}) }), 0, 'nothing reached the receiver');

# 2. with ca_file naming the private CA: delivered
$node->safe_psql('postgres', "ALTER SYSTEM SET cocohooks.ca_file = '$dir/ca.pem'");
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
usleep(1_500_000);
api_sql($node, "INSERT INTO docs SELECT g, 'with ca_file' FROM generate_series(2, 41) g");
ok(wait_deliveries($node), 'finished');
my $recs = records($recv{good}, sub { $_[0]{path} eq '/good' });
is(scalar(@$recs), 40, 'with cocohooks.ca_file, all 40 events delivered over HTTPS');
is(scalar(grep { ($_->{tls_version} // '') !~ /^TLSv1\.[23]$/ } @$recs), 0,
	'over TLS 1.2 or later');
my %conns = map { $_->{peer_port} => 1 } @$recs;
cmp_ok(scalar(keys %conns), '<=', 4,
	'kept-alive connections reused: at most max_host_connections for 40 requests ('
	  . scalar(keys %conns) . ')');

# 3. still verified: another CA's certificate, and a wrong host name
api_sql($node, 'INSERT INTO u VALUES (1); INSERT INTO w VALUES (1)');
ok(wait_deliveries($node), 'finished');
like(error_of('u', 1), qr/SSL certificate problem: unable to get local issuer certificate/,
	'a certificate of an untrusted CA: failure logged with the certificate error');
like(error_of('w', 1), qr/no alternative certificate subject name matches target host ?name 'localhost'/,
	'a certificate for another host name: failure logged with the host name error');
is(scalar(@{ records($recv{untrusted}) }) + scalar(@{ records($recv{wronghost}) }), 0,
	'neither receiver got a request');

# 4. TLS sessions are resumed on new connections
$node->safe_psql('postgres', qq{
	CREATE TABLE s (id int PRIMARY KEY);
	SELECT cocohooks.register_hook('s', 'post_save', '$recv{good}{url}/closeafter', max_retries => 0);
});
# one at a time: each closes its connection, so after the kept-alive ones
# are used up every request needs a new connection and a handshake
my $n_close = 8;
for my $i (1 .. $n_close)
{
	api_sql($node, "INSERT INTO s VALUES ($i)");
	ok(wait_deliveries($node), "closing delivery $i finished");
}
$recs = records($recv{good}, sub { $_[0]{path} eq '/closeafter' });
is(scalar(@$recs), $n_close, "$n_close deliveries");
%conns = map { $_->{peer_port} => 1 } @$recs;
is(scalar(keys %conns), $n_close, 'each on a connection of its own');
# connections opened for these requests, not kept alive from part 2
my %earlier = map { $_->{peer_port} => 1 } @{ records($recv{good}, sub { $_[0]{path} eq '/good' }) };
my @fresh = grep { !$earlier{ $_->{peer_port} } } @$recs;
cmp_ok(scalar(@fresh), '>=', $n_close - 4, 'most needed a new connection');
is(scalar(grep { !$_->{tls_session_reused} } @fresh), 0,
	'every new connection resumed the TLS session instead of a full handshake');

$node->stop;
done_testing();
