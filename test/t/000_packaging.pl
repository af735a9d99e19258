# Packaging: META.json follows the PGXN meta spec 1.0.0 and agrees with the
# Makefile, the control file and the changelog; every released version has
# an install script and an update path to the version under development.
use strict;
use warnings;
use Test::More;
use JSON::PP;
use FindBin;

my $top = "$FindBin::RealBin/../..";

sub slurp
{
	my ($path) = @_;
	open my $fh, '<', "$top/$path" or die "cannot read $path: $!";
	local $/;
	return scalar <$fh>;
}

my $meta = eval { decode_json(slurp('META.json')) };
ok($meta, 'META.json is valid JSON') or diag($@);
$meta //= {};

my ($extversion) = slurp('Makefile') =~ /^EXTVERSION\s*=\s*(\S+)/m;
my ($default_version) = slurp('cocohooks.control') =~ /^default_version\s*=\s*'([^']+)'/m;
is($default_version, $extversion, 'control default_version is the Makefile EXTVERSION');

# the spec's required keys and their forms (https://pgxn.org/spec/)
my $semver = qr/^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z-]+)?$/;
for my $key (qw(name abstract maintainer license provides version meta-spec))
{
	ok(exists $meta->{$key}, "META.json has required key '$key'");
}
is($meta->{name}, 'cocohooks', 'name');
like($meta->{version} // '', $semver, 'version is a semantic version');
is($meta->{version}, $extversion, 'version is the Makefile EXTVERSION');
is($meta->{'meta-spec'}{version}, '1.0.0', 'meta-spec version 1.0.0');
ok(!ref $meta->{abstract} && length($meta->{abstract} // '') > 0, 'abstract is a string');
ok(!ref $meta->{maintainer} || (ref $meta->{maintainer} eq 'ARRAY' && @{ $meta->{maintainer} }),
	'maintainer is a string or a non-empty list');
my %licenses = map { $_ => 1 }
  qw(agpl_3 apache_1_1 apache_2_0 artistic_1 artistic_2 bsd freebsd gfdl_1_2
  gfdl_1_3 gpl_1 gpl_2 gpl_3 lgpl_2_1 lgpl_3_0 mit mozilla_1_0 mozilla_1_1
  openssl perl_5 postgresql qpl_1_0 ssleay sun zlib open_source restricted
  unrestricted unknown);
my @lic = ref $meta->{license} eq 'HASH' ? () : ref $meta->{license} ? @{ $meta->{license} } : ($meta->{license} // ());
ok(@lic && !grep({ !$licenses{$_} } @lic), 'license is one the spec names')
  or diag("license: @lic");
is($meta->{license}, 'postgresql', 'the PostgreSQL License');
like(slurp('LICENSE'), qr/PostgreSQL License/, 'LICENSE holds the PostgreSQL License');
ok(!exists $meta->{release_status}
	  || $meta->{release_status} =~ /^(stable|testing|unstable)$/, 'release_status');

my $provides = $meta->{provides} // {};
ok(ref $provides eq 'HASH' && %$provides, 'provides names at least one extension');
for my $ext (sort keys %$provides)
{
	my $p = $provides->{$ext};
	ok(defined $p->{file} && -f "$top/$p->{file}", "provides $ext: file exists");
	like($p->{version} // '', $semver, "provides $ext: version is semantic");
	is($p->{version}, $extversion, "provides $ext: the version under development");
}
is($meta->{prereqs}{runtime}{requires}{PostgreSQL}, '15.0.0', 'requires PostgreSQL 15 or later');

like(slurp('CHANGELOG.md'), qr/^## \Q$extversion\E\b/m, 'CHANGELOG.md has the version under development');

# install scripts and update paths, and the Makefile installs them all
my @scripts = map { s{.*/}{}r } glob("$top/sql/cocohooks--*.sql");
my (%install, %update);
for (@scripts)
{
	if (/^cocohooks--([^-]+)--([^-]+)\.sql$/) { $update{$1} = $2 }
	elsif (/^cocohooks--([^-]+)\.sql$/) { $install{$1} = 1 }
}
ok($install{$extversion}, "an install script for $extversion");
my $data = slurp('Makefile') =~ s/\\\n/ /gr;
for my $v (sort keys %install)
{
	like(slurp('CHANGELOG.md'), qr/^## \Q$v\E\b/m, "CHANGELOG.md has $v");
	next if $v eq $extversion;
	my ($at, $steps) = ($v, 0);
	$at = $update{$at} while defined $update{$at} && $steps++ < 50;
	is($at, $extversion, "released $v has an update path to $extversion");
}
$data =~ s/\$\(EXTENSION\)/cocohooks/g;
$data =~ s/\$\(EXTVERSION\)/$extversion/g;
for my $s (@scripts)
{
	like($data, qr{^DATA\s*=[^\n]*\bsql/\Q$s\E}m, "the Makefile installs $s");
}

done_testing();
