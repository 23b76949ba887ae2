//! One case per rule of pykickstart 3.78's kickstart syntax (tokenizer, state machine,
//! includes, argparse semantics, per-command checks, warnings). Expected verdicts, first-error
//! lines and messages were produced by pykickstart 3.78 (`tests/pykickstart_oracle.py`) on the same
//! inputs; `line: None` is where pykickstart has no line number (we report one anyway).

use kickstart::{MemLoader, Options, Version, parse_path};

struct Case {
    name: &'static str,
    version: &'static str,
    text: &'static [u8],
    ok: bool,
    line: Option<usize>,
    message: &'static str,
}

const CASES: &[Case] = &[
    Case { name: "c01.ks", version: "DEVEL", text: b"rootpw abc#def\x0a", ok: true, line: None, message: "" },
    Case { name: "c01.ks", version: "F33", text: b"rootpw abc#def\x0a", ok: true, line: None, message: "" },
    Case { name: "c02.ks", version: "DEVEL", text: b"lang en_US\x0aReboot\x0a", ok: false, line: Some(2), message: "Unknown command: Reboot" },
    Case { name: "c02.ks", version: "F33", text: b"lang en_US\x0aReboot\x0a", ok: false, line: Some(2), message: "Unknown command: Reboot" },
    Case { name: "c03.ks", version: "DEVEL", text: b"bootloader --timeout=1 \\\x0a--append=x\x0a", ok: false, line: Some(1), message: "unrecognized arguments: \n" },
    Case { name: "c03.ks", version: "F33", text: b"bootloader --timeout=1 \\\x0a--append=x\x0a", ok: false, line: Some(1), message: "unrecognized arguments: \n" },
    Case { name: "c04.ks", version: "DEVEL", text: b"lang en_US\x0arootpw \"abc\x0a", ok: false, line: None, message: "No closing quotation" },
    Case { name: "c04.ks", version: "F33", text: b"lang en_US\x0arootpw \"abc\x0a", ok: false, line: None, message: "No closing quotation" },
    Case { name: "c05.ks", version: "DEVEL", text: b"%foo\x0a%end\x0a", ok: false, line: Some(1), message: "Unknown kickstart section: %foo" },
    Case { name: "c05.ks", version: "F33", text: b"%foo\x0a%end\x0a", ok: false, line: Some(1), message: "Unknown kickstart section: %foo" },
    Case { name: "c06.ks", version: "DEVEL", text: b"%post\x0aecho hi\x0a\x0a", ok: false, line: Some(3), message: "Section %post does not end with %end." },
    Case { name: "c06.ks", version: "F33", text: b"%post\x0aecho hi\x0a\x0a", ok: false, line: Some(3), message: "Section %post does not end with %end." },
    Case { name: "c07.ks", version: "DEVEL", text: b"%post\x0aecho\x0a%packages\x0a%end\x0a", ok: false, line: Some(3), message: "Section %post does not end with %end." },
    Case { name: "c07.ks", version: "F33", text: b"%post\x0aecho\x0a%packages\x0a%end\x0a", ok: false, line: Some(3), message: "Section %post does not end with %end." },
    Case { name: "c08.ks", version: "DEVEL", text: b"%post\x0aecho\x0a%END\x0a", ok: false, line: Some(3), message: "Section %post does not end with %end." },
    Case { name: "c08.ks", version: "F33", text: b"%post\x0aecho\x0a%END\x0a", ok: false, line: Some(3), message: "Section %post does not end with %end." },
    Case { name: "c09.ks", version: "DEVEL", text: b"%post\x0aecho\x0a%end # x\x0a", ok: true, line: None, message: "" },
    Case { name: "c09.ks", version: "F33", text: b"%post\x0aecho\x0a%end # x\x0a", ok: true, line: None, message: "" },
    Case { name: "c10.ks", version: "DEVEL", text: b"lang en_US\x0a%include nope.ks\x0a", ok: false, line: Some(0), message: "Unable to open input kickstart file: Error opening file: [Errno 2] No such file or directory: 'nope.ks'" },
    Case { name: "c10.ks", version: "F33", text: b"lang en_US\x0a%include nope.ks\x0a", ok: false, line: Some(0), message: "Unable to open input kickstart file: Error opening file: [Errno 2] No such file or directory: 'nope.ks'" },
    Case { name: "c13.ks", version: "DEVEL", text: b"part / --size=1\x0aautopart\x0a", ok: false, line: Some(2), message: "The autopart and partition commands can't be used at the same time." },
    Case { name: "c13.ks", version: "F33", text: b"part / --size=1\x0aautopart\x0a", ok: false, line: Some(2), message: "The autopart and partition commands can't be used at the same time." },
    Case { name: "c13b.ks", version: "DEVEL", text: b"autopart\x0apart / --size=1\x0a", ok: false, line: Some(2), message: "The part and autopart commands can't be used at the same time." },
    Case { name: "c13b.ks", version: "F33", text: b"autopart\x0apart / --size=1\x0a", ok: false, line: Some(2), message: "The part and autopart commands can't be used at the same time." },
    Case { name: "c14.ks", version: "DEVEL", text: b"bootloader --loc=mbr --time=5\x0a", ok: true, line: None, message: "" },
    Case { name: "c14.ks", version: "F33", text: b"bootloader --loc=mbr --time=5\x0a", ok: true, line: None, message: "" },
    Case { name: "c15.ks", version: "DEVEL", text: b"network --no\x0a", ok: false, line: Some(1), message: "ambiguous option: --no could match --nodns, --notksdevice, --noipv4, --noipv6, --nodefroute, --no-activate" },
    Case { name: "c15.ks", version: "F33", text: b"network --no\x0a", ok: false, line: Some(1), message: "ambiguous option: --no could match --nodns, --notksdevice, --noipv4, --noipv6, --nodefroute, --no-activate" },
    Case { name: "c16.ks", version: "DEVEL", text: b"bootloader --append -quiet\x0a", ok: false, line: Some(1), message: "argument --append: expected one argument" },
    Case { name: "c16.ks", version: "F33", text: b"bootloader --append -quiet\x0a", ok: false, line: Some(1), message: "argument --append: expected one argument" },
    Case { name: "c17.ks", version: "DEVEL", text: b"reboot --eject=yes\x0a", ok: false, line: Some(1), message: "argument --eject: ignored explicit argument 'yes'" },
    Case { name: "c17.ks", version: "F33", text: b"reboot --eject=yes\x0a", ok: false, line: Some(1), message: "argument --eject: ignored explicit argument 'yes'" },
    Case { name: "c18.ks", version: "DEVEL", text: b"zerombr yes\x0a", ok: false, line: Some(1), message: "unrecognized arguments: yes" },
    Case { name: "c18.ks", version: "F33", text: b"zerombr yes\x0a", ok: false, line: Some(1), message: "unrecognized arguments: yes" },
    Case { name: "c19.ks", version: "DEVEL", text: b"part / --frob\x0a", ok: false, line: Some(1), message: "Unexpected arguments to partition command: ['--frob']" },
    Case { name: "c19.ks", version: "F33", text: b"part / --frob\x0a", ok: false, line: Some(1), message: "Unexpected arguments to partition command: ['--frob']" },
    Case { name: "c20.ks", version: "DEVEL", text: b"ostreesetup --osname=x --url=http://x\x0a", ok: false, line: Some(1), message: "the following arguments are required: --ref" },
    Case { name: "c20.ks", version: "F33", text: b"ostreesetup --osname=x --url=http://x\x0a", ok: false, line: Some(1), message: "the following arguments are required: --ref" },
    Case { name: "c21.ks", version: "DEVEL", text: b"lang\x0a", ok: false, line: Some(1), message: "the following arguments are required: <lang>" },
    Case { name: "c21.ks", version: "F33", text: b"lang\x0a", ok: false, line: Some(1), message: "the following arguments are required: <lang>" },
    Case { name: "c22.ks", version: "DEVEL", text: b"bootloader --location=foo\x0a", ok: false, line: Some(1), message: "argument --location: invalid choice: 'foo' (choose from 'mbr', 'partition', 'none', 'boot')" },
    Case { name: "c22.ks", version: "F33", text: b"bootloader --location=foo\x0a", ok: false, line: Some(1), message: "argument --location: invalid choice: 'foo' (choose from 'mbr', 'partition', 'none', 'boot')" },
    Case { name: "c23.ks", version: "DEVEL", text: b"part / --size=abc\x0a", ok: false, line: Some(1), message: "argument --size: invalid int value: 'abc'" },
    Case { name: "c23.ks", version: "F33", text: b"part / --size=abc\x0a", ok: false, line: Some(1), message: "argument --size: invalid int value: 'abc'" },
    Case { name: "c24.ks", version: "DEVEL", text: b"autopart --type=zfs\x0a", ok: false, line: Some(1), message: "Invalid autopart type: zfs" },
    Case { name: "c24.ks", version: "F33", text: b"autopart --type=zfs\x0a", ok: false, line: Some(1), message: "Invalid autopart type: zfs" },
    Case { name: "c25.ks", version: "DEVEL", text: b"network --onboot=maybe\x0a", ok: false, line: Some(1), message: "argument --onboot: invalid boolean value: 'maybe'" },
    Case { name: "c25.ks", version: "F33", text: b"network --onboot=maybe\x0a", ok: false, line: Some(1), message: "argument --onboot: invalid boolean value: 'maybe'" },
    Case { name: "c27.ks", version: "DEVEL", text: b"part / --size=1\x0apart /boot --size=1\x0apart / --size=2\x0a", ok: false, line: Some(3), message: "A partition with the mountpoint / has already been defined." },
    Case { name: "c27.ks", version: "F33", text: b"part / --size=1\x0apart /boot --size=1\x0apart / --size=2\x0a", ok: false, line: Some(3), message: "A partition with the mountpoint / has already been defined." },
    Case { name: "c28.ks", version: "DEVEL", text: b"auth --useshadow\x0a", ok: false, line: Some(1), message: "auth has been removed." },
    Case { name: "c28.ks", version: "F33", text: b"auth --useshadow\x0a", ok: false, line: Some(1), message: "The authconfig command will be deprecated, use authselect instead." },
    Case { name: "c29.ks", version: "DEVEL", text: b"timezone --isUtc Europe/Prague\x0a", ok: false, line: Some(1), message: "Ignoring deprecated option on line 1: The --isUtc option has been deprecated and no longer has any effect. It may be removed from future releases, which will result in a fatal error from kickstart. Please modify your kickstart file to remove this option." },
    Case { name: "c29.ks", version: "F33", text: b"timezone --isUtc Europe/Prague\x0a", ok: false, line: Some(1), message: "The option --isUtc will be deprecated in future releases. Please modify your kickstart file to replace this option with its preferred alias --utc." },
    Case { name: "c30.ks", version: "DEVEL", text: b"url\x0a", ok: false, line: Some(1), message: "One of ---mirrorlist, --url, --metalink options must be specified for url command." },
    Case { name: "c30.ks", version: "F33", text: b"url\x0a", ok: false, line: Some(1), message: "One of ---mirrorlist, --url, --metalink options must be specified for url command." },
    Case { name: "c30b.ks", version: "DEVEL", text: b"url --url=http://a --mirrorlist=http://b\x0a", ok: false, line: Some(1), message: "Only one of --mirrorlist, --url options may be specified for url command." },
    Case { name: "c30b.ks", version: "F33", text: b"url --url=http://a --mirrorlist=http://b\x0a", ok: false, line: Some(1), message: "Only one of --mirrorlist, --url options may be specified for url command." },
    Case { name: "c31.ks", version: "DEVEL", text: b"ostreesetup --osname=x --url=ftp://x --ref=r\x0a", ok: false, line: Some(1), message: "ostree repos must use file, HTTP or HTTPS protocol." },
    Case { name: "c31.ks", version: "F33", text: b"ostreesetup --osname=x --url=ftp://x --ref=r\x0a", ok: false, line: Some(1), message: "ostree repos must use file, HTTP or HTTPS protocol." },
    Case { name: "c32.ks", version: "DEVEL", text: b"cmdline --non-interactive\x0a", ok: false, line: Some(1), message: "Kickstart command cmdline does not support --non-interactive parameter" },
    Case { name: "c32.ks", version: "F33", text: b"cmdline --non-interactive\x0a", ok: false, line: Some(1), message: "Kickstart command cmdline does not support --non-interactive parameter" },
    Case { name: "c33.ks", version: "DEVEL", text: b"%packages --default --nocore\x0a%end\x0a", ok: false, line: Some(1), message: "--default and --nocore cannot be used together" },
    Case { name: "c33.ks", version: "F33", text: b"%packages --default --nocore\x0a%end\x0a", ok: false, line: Some(1), message: "--default and --nocore cannot be used together" },
    Case { name: "c34.ks", version: "DEVEL", text: b"%packages\x0a@core --nodefaults --optional\x0a%end\x0a", ok: false, line: None, message: "Group cannot specify both --nodefaults and --optional" },
    Case { name: "c34.ks", version: "F33", text: b"%packages\x0a@core --nodefaults --optional\x0a%end\x0a", ok: false, line: None, message: "Group cannot specify both --nodefaults and --optional" },
    Case { name: "c35.ks", version: "DEVEL", text: b"%certificate --filename=a.pem\x0aXX\x0a%end\x0a", ok: false, line: Some(1), message: "One of --dir or --type must be specified for %certificate" },
    Case { name: "c35.ks", version: "F33", text: b"%certificate --filename=a.pem\x0aXX\x0a%end\x0a", ok: false, line: Some(1), message: "One of --dir or --type must be specified for %certificate" },
    Case { name: "c36.ks", version: "DEVEL", text: b"lang en_US\x0a%ksappend app.ks\x0abogus\x0a", ok: false, line: Some(4), message: "Unknown command: bogus" },
    Case { name: "c36.ks", version: "F33", text: b"lang en_US\x0a%ksappend app.ks\x0abogus\x0a", ok: false, line: Some(4), message: "Unknown command: bogus" },
    Case { name: "c37.ks", version: "DEVEL", text: b"lang en_US\x0a\xff\x0a", ok: false, line: None, message: "'utf-8' codec can't decode byte 0xff in position 11: invalid start byte" },
    Case { name: "c37.ks", version: "F33", text: b"lang en_US\x0a\xff\x0a", ok: false, line: None, message: "'utf-8' codec can't decode byte 0xff in position 11: invalid start byte" },
    Case { name: "c38.ks", version: "DEVEL", text: b"lang en_US\x0cbogus\x0a", ok: false, line: Some(2), message: "Unknown command: bogus" },
    Case { name: "c38.ks", version: "F33", text: b"lang en_US\x0cbogus\x0a", ok: false, line: Some(2), message: "Unknown command: bogus" },
    Case { name: "c39.ks", version: "DEVEL", text: b"ostreesetup --osname=x --url=http://x --ref=r\x0aostreecontainer --url=quay.io/x\x0a", ok: false, line: Some(2), message: "The ostreecontainer and ostreesetup commands can't be used at the same time." },
    Case { name: "c39.ks", version: "F33", text: b"ostreesetup --osname=x --url=http://x --ref=r\x0aostreecontainer --url=quay.io/x\x0a", ok: false, line: Some(2), message: "Unknown command: ostreecontainer" },
    Case { name: "c40.ks", version: "DEVEL", text: b"%traceback\x0aecho\x0a%end\x0a", ok: false, line: Some(1), message: "The %traceback section has been deprecated. It may be removed in the future, which will result in a fatal error from kickstart. Please modify your kickstart file to use the %onerror section instead." },
    Case { name: "c40.ks", version: "F33", text: b"%traceback\x0aecho\x0a%end\x0a", ok: true, line: None, message: "" },
    Case { name: "c41.ks", version: "DEVEL", text: b"%pre --nochroot\x0aecho\x0a%end\x0a", ok: false, line: Some(1), message: "unrecognized arguments: --nochroot" },
    Case { name: "c41.ks", version: "F33", text: b"%pre --nochroot\x0aecho\x0a%end\x0a", ok: false, line: Some(1), message: "unrecognized arguments: --nochroot" },
    Case { name: "c42.ks", version: "DEVEL", text: b"%post --interp /usr/bin/python\x0aprint(1)\x0a%end\x0abogus\x0a", ok: false, line: Some(4), message: "Unknown command: bogus" },
    Case { name: "c42.ks", version: "F33", text: b"%post --interp /usr/bin/python\x0aprint(1)\x0a%end\x0abogus\x0a", ok: false, line: Some(4), message: "Unknown command: bogus" },
    Case { name: "c43.ks", version: "DEVEL", text: b"   \x0a", ok: false, line: None, message: "Empty file" },
    Case { name: "c43.ks", version: "F33", text: b"   \x0a", ok: false, line: None, message: "Empty file" },
    Case { name: "c45.ks", version: "DEVEL", text: b"sshkey --username=a ssh-rsa AAAA x@y\x0a", ok: false, line: Some(1), message: "Unexpected arguments to sshkey command: ['AAAA', 'x@y']" },
    Case { name: "c45.ks", version: "F33", text: b"sshkey --username=a ssh-rsa AAAA x@y\x0a", ok: false, line: Some(1), message: "Unexpected arguments to sshkey command: ['AAAA', 'x@y']" },
    Case { name: "c46.ks", version: "DEVEL", text: b"part / --size=1\x0apart swap --size=1\x0apart swap --size=1\x0abogus\x0a", ok: false, line: Some(4), message: "Unknown command: bogus" },
    Case { name: "c46.ks", version: "F33", text: b"part / --size=1\x0apart swap --size=1\x0apart swap --size=1\x0abogus\x0a", ok: false, line: Some(4), message: "Unknown command: bogus" },
    Case { name: "c47.ks", version: "DEVEL", text: b"services\x0a", ok: false, line: Some(1), message: "One of --disabled or --enabled must be provided." },
    Case { name: "c47.ks", version: "F33", text: b"services\x0a", ok: false, line: Some(1), message: "One of --disabled or --enabled must be provided." },
    Case { name: "c48.ks", version: "DEVEL", text: b"bootloader --sdboot --extlinux\x0a", ok: false, line: Some(1), message: "Only one of --sdboot and --extlinux may be specified for bootloader command." },
    Case { name: "c48.ks", version: "F33", text: b"bootloader --sdboot --extlinux\x0a", ok: false, line: Some(1), message: "unrecognized arguments: --sdboot" },
    Case { name: "c49.ks", version: "DEVEL", text: b"autopart --fstype=btrfs\x0a", ok: false, line: Some(1), message: "autopart --fstype=btrfs is not valid fstype, use --type=btrfs instead" },
    Case { name: "c49.ks", version: "F33", text: b"autopart --fstype=btrfs\x0a", ok: false, line: Some(1), message: "autopart --fstype=btrfs is not valid fstype, use --type=btrfs instead" },
    Case { name: "c50.ks", version: "DEVEL", text: b"rootpw\x0a", ok: false, line: Some(1), message: "A single argument is expected for the rootpw command" },
    Case { name: "c50.ks", version: "F33", text: b"rootpw\x0a", ok: false, line: Some(1), message: "A single argument is expected for the rootpw command" },
    Case { name: "c51.ks", version: "DEVEL", text: b"rootpw a b\x0a", ok: false, line: Some(1), message: "Unexpected arguments to rootpw command: ['b']" },
    Case { name: "c51.ks", version: "F33", text: b"rootpw a b\x0a", ok: false, line: Some(1), message: "Unexpected arguments to rootpw command: ['b']" },
    Case { name: "c52.ks", version: "DEVEL", text: b"keyboard a b\x0a", ok: false, line: Some(1), message: "A single argument is expected for the keyboard command" },
    Case { name: "c52.ks", version: "F33", text: b"keyboard a b\x0a", ok: false, line: Some(1), message: "A single argument is expected for the keyboard command" },
    Case { name: "c53.ks", version: "DEVEL", text: b"timezone\x0a", ok: false, line: Some(1), message: "At least one option and/or an argument are expected for the timezone command" },
    Case { name: "c53.ks", version: "F33", text: b"timezone\x0a", ok: false, line: Some(1), message: "At least one option and/or an argument are expected for the timezone command" },
    Case { name: "c54.ks", version: "DEVEL", text: b"timezone a b\x0a", ok: false, line: Some(1), message: "One or zero arguments are expected for the timezone command" },
    Case { name: "c54.ks", version: "F33", text: b"timezone a b\x0a", ok: false, line: Some(1), message: "One or zero arguments are expected for the timezone command" },
    Case { name: "c55.ks", version: "DEVEL", text: b"network --device=eth0\x0anetwork --device=eth0\x0a", ok: false, line: Some(2), message: "A network device with the name eth0 has already been defined." },
    Case { name: "c55.ks", version: "F33", text: b"network --device=eth0\x0anetwork --device=eth0\x0a", ok: false, line: Some(2), message: "A network device with the name eth0 has already been defined." },
    Case { name: "c56.ks", version: "DEVEL", text: b"user --name=a\x0auser --name=a\x0a", ok: false, line: Some(2), message: "A user with the name a has already been defined." },
    Case { name: "c56.ks", version: "F33", text: b"user --name=a\x0auser --name=a\x0a", ok: false, line: Some(2), message: "A user with the name a has already been defined." },
    Case { name: "c57.ks", version: "DEVEL", text: b"repo --name=a --baseurl=http://a\x0arepo --name=a --baseurl=http://b\x0a", ok: false, line: Some(2), message: "A repo with the name a has already been defined." },
    Case { name: "c57.ks", version: "F33", text: b"repo --name=a --baseurl=http://a\x0arepo --name=a --baseurl=http://b\x0a", ok: false, line: Some(2), message: "A repo with the name a has already been defined." },
    Case { name: "c58.ks", version: "DEVEL", text: b"repo --name=a --baseurl=http://a --mirrorlist=http://b\x0a", ok: false, line: Some(1), message: "Only one of --mirrorlist, --baseurl options may be specified for repo command." },
    Case { name: "c58.ks", version: "F33", text: b"repo --name=a --baseurl=http://a --mirrorlist=http://b\x0a", ok: false, line: Some(1), message: "Only one of --mirrorlist, --baseurl options may be specified for repo command." },
    Case { name: "c59.ks", version: "DEVEL", text: b"\"\" x\x0a", ok: false, line: None, message: "string index out of range" },
    Case { name: "c59.ks", version: "F33", text: b"\"\" x\x0a", ok: false, line: None, message: "string index out of range" },
    Case { name: "c60.ks", version: "DEVEL", text: b"%include\x0a", ok: false, line: Some(1), message: "There was a problem reading from line 1 of the kickstart file" },
    Case { name: "c60.ks", version: "F33", text: b"%include\x0a", ok: false, line: Some(1), message: "There was a problem reading from line 1 of the kickstart file" },
    Case { name: "c61.ks", version: "DEVEL", text: b"firewall --port=22 --port=80:udp --service=a,b\x0abogus\x0a", ok: false, line: Some(2), message: "Unknown command: bogus" },
    Case { name: "c61.ks", version: "F33", text: b"firewall --port=22 --port=80:udp --service=a,b\x0abogus\x0a", ok: false, line: Some(2), message: "Unknown command: bogus" },
    Case { name: "c62.ks", version: "DEVEL", text: b"%packages\x0a-\x0a%end\x0a", ok: false, line: None, message: "string index out of range" },
    Case { name: "c62.ks", version: "F33", text: b"%packages\x0a-\x0a%end\x0a", ok: false, line: None, message: "string index out of range" },
    Case { name: "c63.ks", version: "DEVEL", text: b"lang en_US --addsupport=a,b\x0a%addon com_x --y\x0abody\x0a%end\x0a%anaconda\x0az\x0a%end\x0abogus\x0a", ok: false, line: Some(8), message: "Unknown command: bogus" },
    Case { name: "c63.ks", version: "F33", text: b"lang en_US --addsupport=a,b\x0a%addon com_x --y\x0abody\x0a%end\x0a%anaconda\x0az\x0a%end\x0abogus\x0a", ok: false, line: Some(8), message: "Unknown command: bogus" },
    Case { name: "c64.ks", version: "DEVEL", text: b"logvol / --name=root --vgname=vg\x0a", ok: false, line: Some(1), message: "No size given for logical volume. Use one of --useexisting, --noformat, --size, --percent, or --hibernation." },
    Case { name: "c64.ks", version: "F33", text: b"logvol / --name=root --vgname=vg\x0a", ok: false, line: Some(1), message: "No size given for logical volume. Use one of --useexisting, --noformat, --size, --percent, or --hibernation." },
    Case { name: "c65.ks", version: "DEVEL", text: b"volgroup\x0a", ok: false, line: Some(1), message: "volgroup must be given a VG name" },
    Case { name: "c65.ks", version: "F33", text: b"volgroup\x0a", ok: false, line: Some(1), message: "volgroup must be given a VG name" },
    Case { name: "c66.ks", version: "DEVEL", text: b"part / --size=1 --resize\x0a", ok: false, line: Some(1), message: "--resize can only be used in conjunction with --onpart" },
    Case { name: "c66.ks", version: "F33", text: b"part / --size=1 --resize\x0a", ok: false, line: Some(1), message: "--resize can only be used in conjunction with --onpart" },
    Case { name: "c67.ks", version: "DEVEL", text: b"timezone --ntpservers=a --nontp UTC\x0a", ok: false, line: Some(1), message: "Ignoring deprecated option on line 1: The --ntpservers option has been deprecated and no longer has any effect. It may be removed from future releases, which will result in a fatal error from kickstart. Please modify your kickstart file to remove this option." },
    Case { name: "c67.ks", version: "F33", text: b"timezone --ntpservers=a --nontp UTC\x0a", ok: false, line: Some(1), message: "Options --nontp and --ntpservers are mutually exclusive" },
    Case { name: "c68.ks", version: "DEVEL", text: b"bootloader --boot-drive=a,b\x0a", ok: false, line: Some(1), message: "--boot-drive accepts only one argument" },
    Case { name: "c68.ks", version: "F33", text: b"bootloader --boot-drive=a,b\x0a", ok: false, line: Some(1), message: "--boot-drive accepts only one argument" },
    // RHEL7 network --interfacename (validate_network_interface_name)
    Case { name: "vlan0.ks", version: "RHEL7", text: b"network --device=eth0 --interfacename=vlan.5\x0a", ok: false, line: Some(1), message: "When using the <prefix>.<vlan id> interface name notation, <prefix> can't be equal to 'vlan'." },
    Case { name: "vlan1.ks", version: "RHEL7", text: b"network --device=eth0 --interfacename=ens7.x\x0a", ok: false, line: Some(1), message: "If network --interfacename contains a '.', valid vlan id should follow." },
    Case { name: "vlan2.ks", version: "RHEL7", text: b"network --device=eth0 --interfacename=vlanx\x0a", ok: false, line: Some(1), message: "If network --interfacename starts with 'vlan', valid vlan id should follow." },
    Case { name: "vlan3.ks", version: "RHEL7", text: b"network --device=eth0 --interfacename=vlan5000\x0a", ok: false, line: Some(1), message: "The vlan id is out of the 0-4095 vlan id range." },
    Case { name: "vlan4.ks", version: "RHEL7", text: b"network --device=eth0 --interfacename=ens7.171\x0a", ok: true, line: None, message: "" },
    Case { name: "vlan5.ks", version: "RHEL7", text: b"network --device=eth0 --interfacename=ens7.-1\x0a", ok: false, line: Some(1), message: "The vlan id is out of the 0-4095 vlan id range." },
    Case { name: "vlan6.ks", version: "RHEL7", text: b"network --device=eth0 --interfacename=\" vlan 12 \"\x0a", ok: true, line: None, message: "" },
    Case { name: "vlan7.ks", version: "RHEL7", text: b"network --device=eth0 --interfacename=myvlan\x0a", ok: true, line: None, message: "" },
];

#[test]
fn rules_match_pykickstart() {
    let mut failures = Vec::new();
    for c in CASES {
        let loader = MemLoader::default().with("app.ks", "keyboard us\ntimezone UTC\n");
        let mut loader = loader;
        loader.files.insert(c.name.to_string(), c.text.to_vec());
        let r = parse_path(
            c.name,
            &Options::validate(Version::parse(c.version).unwrap()),
            &loader,
        );
        let first = r.diagnostics.first();
        let ok = first.is_none();
        let good = match first {
            None => c.ok,
            Some(d) => {
                !c.ok
                    && match c.line {
                        Some(l) => d.line == l && !d.pykickstart_has_no_line,
                        None => d.pykickstart_has_no_line,
                    }
                    && (d.message == c.message
                        || (c.message.len() >= 150 && d.message.starts_with(c.message)))
            }
        };
        if !good {
            failures.push(format!(
                "{} {}: expected ok={} line={:?} {:?}; got ok={ok} {:?}",
                c.name, c.version, c.ok, c.line, c.message, first
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
