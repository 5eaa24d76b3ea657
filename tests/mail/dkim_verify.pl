#!/usr/bin/perl
# Verifies the DKIM signatures of the message on standard input with Mail::DKIM (Debian's
# libmail-dkim-perl), a verifier written independently of the dkimpy library that signs.
# The public key comes from the file named by the first argument, standing in for the DNS TXT
# record "<selector>._domainkey.<domain>" named by the second; any other name does not exist.
# Prints "result=<pass|fail|none|invalid> headers=<signed header list> domain=<d=>" per
# signature, and exits 0 only when at least one signature passes.
use strict;
use warnings;
use Mail::DKIM::Verifier;
use Net::DNS;

my ($record_file, $record_name) = @ARGV;
open(my $fh, '<', $record_file) or die "cannot read $record_file: $!";
my $record = do { local $/; <$fh> };
close($fh);
$record =~ s/\s+\z//;

{
    no warnings 'redefine';
    *Mail::DKIM::DNS::query = sub {
        my ($name, $type) = @_;
        if (lc($name) eq lc($record_name) && uc($type) eq 'TXT') {
            my @chunks = unpack('(A255)*', $record);
            $@ = 'NOERROR';
            return Net::DNS::RR->new(name => $name, type => 'TXT', txtdata => \@chunks);
        }
        $@ = 'NXDOMAIN';
        return;
    };
}

binmode(STDIN);
my $verifier = Mail::DKIM::Verifier->new();
while (my $line = <STDIN>) {
    $line =~ s/\r?\n\z/\r\n/;
    $verifier->PRINT($line);
}
$verifier->CLOSE();

my $passed = 0;
foreach my $signature ($verifier->signatures) {
    my $result = $signature->result;
    $passed = 1 if $result eq 'pass';
    printf("result=%s headers=%s domain=%s detail=%s\n",
        $result, lc(join(':', $signature->headerlist)), $signature->domain,
        $signature->result_detail);
}
print "result=none\n" unless $verifier->signatures;
exit($passed ? 0 : 1);
