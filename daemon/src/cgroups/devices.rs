//! The device controller: a container may open or make only the allow-listed device
//! nodes ([`ALLOWED`]), on both hierarchies.
//!
//! On cgroup v1 ([`restrict_v1`]) the group's `devices.deny` gets `a` (deny everything),
//! then each rule goes to `devices.allow`, as runc does. A v1 child group starts with its
//! parent's list, which may be wider; the deny-all first makes the result independent of it.
//!
//! cgroup v2 has no such files: the kernel runs the BPF_CGROUP_DEVICE programs attached
//! to the group on every open and mknod of a device node
//! (Documentation/admin-guide/cgroup-v2.rst, "Device controller"). [`restrict_v2`]
//! attaches one generated from the same rules by [`program`], as runc
//! (libcontainer/cgroups/devices/devicefilter) and crun do: it returns 1 (allow) only
//! when a rule's type, major and minor match and the requested access is a subset of
//! the rule's, 0 (deny) otherwise. Generation is pure and tested by running the bytes
//! in a user-space eBPF interpreter; the bpf(2) calls live in [`boxd_shim::bpf`].
//!
//! So even a node the app manages to make (with `cap_add: MKNOD`) or finds bind-mounted
//! cannot be opened unless listed, whichever hierarchy the host has.

use std::fmt;
use std::path::Path;

use super::files;
use super::CgroupError;

/// The character devices a container may use (`type major:minor access`): the OCI
/// default devices in `/dev` (null, zero, full, random, urandom, tty), `/dev/ptmx`
/// and the pty slaves of its own devpts.
pub const ALLOWED: &[&str] = &[
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:0 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
];

/// Deny every device in the v1 group `dir`, then allow [`ALLOWED`].
pub fn restrict_v1(dir: &Path) -> Result<(), CgroupError> {
    let set = |file: &'static str, value: &str| {
        files::write_value(&dir.join(file), value).map_err(|source| CgroupError::SetLimit {
            path: dir.to_owned(),
            file,
            source: Box::new(source),
        })
    };
    set("devices.deny", "a")?;
    for rule in ALLOWED {
        set("devices.allow", rule)?;
    }
    Ok(())
}

/// Attach the device program of [`ALLOWED`] to the v2 group `dir`, replacing any the
/// group had: a reused group keeps exactly one, and one that a crash left without a
/// program (between mkdir and attach) gets it when it is reused.
///
/// A `dir` that is not on cgroup2 is left alone. Only the unit tests' fake trees are
/// such: production managers are built on a root that `detect` verified to be cgroup2,
/// and the kernel would refuse to attach elsewhere anyway.
pub fn restrict_v2(dir: &Path) -> Result<(), CgroupError> {
    let failed = |source: Box<dyn std::error::Error + Send + Sync>| CgroupError::SetLimit {
        path: dir.to_owned(),
        file: "device program",
        source,
    };
    let fs = nix::sys::statfs::statfs(dir).map_err(|e| failed(Box::new(e)))?;
    if fs.filesystem_type() != nix::sys::statfs::CGROUP2_SUPER_MAGIC {
        return Ok(());
    }
    let rules = parse_rules(ALLOWED).map_err(|e| failed(Box::new(e)))?;
    boxd_shim::bpf::attach_device_program(dir, &program(&rules)).map_err(|e| failed(Box::new(e)))
}

/// A rule of [`ALLOWED`] could not be parsed.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// The text is not `a` or `TYPE MAJOR:MINOR ACCESS`.
    #[error("invalid device rule {rule:?}: {reason}")]
    ParseRule { rule: String, reason: &'static str },
}

/// Which device nodes a rule covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceType {
    /// `a`: character and block devices.
    All,
    /// `c`: character devices.
    Char,
    /// `b`: block devices.
    Block,
}

/// Access bits, as the kernel passes them to the program (`BPF_DEVCG_ACC_*`).
pub mod access {
    /// `m`: mknod.
    pub const MKNOD: u32 = 1;
    /// `r`: open for reading.
    pub const READ: u32 = 2;
    /// `w`: open for writing.
    pub const WRITE: u32 = 4;
    /// `rwm`.
    pub const ALL: u32 = MKNOD | READ | WRITE;
}

/// `BPF_DEVCG_DEV_BLOCK` and `BPF_DEVCG_DEV_CHAR`, the low 16 bits of `access_type`.
pub const DEV_BLOCK: u32 = 1;
/// See [`DEV_BLOCK`].
pub const DEV_CHAR: u32 = 2;

/// One allow rule: `None` for major or minor is the wildcard `*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// The device type it covers.
    pub kind: DeviceType,
    /// Major number, or any.
    pub major: Option<u32>,
    /// Minor number, or any.
    pub minor: Option<u32>,
    /// [`access`] bits it allows.
    pub access: u32,
}

impl Rule {
    /// Whether the rule lets everything through (`a *:* rwm`).
    fn allows_all(&self) -> bool {
        self.kind == DeviceType::All
            && self.major.is_none()
            && self.minor.is_none()
            && self.access == access::ALL
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            DeviceType::All => 'a',
            DeviceType::Char => 'c',
            DeviceType::Block => 'b',
        };
        let num = |n: Option<u32>| n.map_or("*".to_owned(), |n| n.to_string());
        let mut acc = String::new();
        for (bit, c) in [
            (access::READ, 'r'),
            (access::WRITE, 'w'),
            (access::MKNOD, 'm'),
        ] {
            if self.access & bit != 0 {
                acc.push(c);
            }
        }
        write!(f, "{kind} {}:{} {acc}", num(self.major), num(self.minor))
    }
}

/// Largest major and minor of a `dev_t` (include/linux/kdev_t.h: 12 and 20 bits); also
/// keeps every number a positive `i32` immediate of the program.
const MAX_MAJOR: u32 = (1 << 12) - 1;
const MAX_MINOR: u32 = (1 << 20) - 1;

/// Parses one rule in the `devices.allow` syntax: `a`, or `TYPE MAJOR:MINOR ACCESS`
/// with TYPE one of `a c b`, `*` for any major or minor, ACCESS a non-empty subset of
/// `rwm` (`a` alone means `a *:* rwm`, as in cgroup v1).
pub fn parse_rule(text: &str) -> Result<Rule, RuleError> {
    let bad = |reason| RuleError::ParseRule {
        rule: text.to_owned(),
        reason,
    };
    let fields: Vec<&str> = text.split_whitespace().collect();
    let (kind, numbers, acc) = match fields.as_slice() {
        ["a"] => ("a", "*:*", "rwm"),
        [kind, numbers, acc] => (*kind, *numbers, *acc),
        _ => return Err(bad("expected TYPE MAJOR:MINOR ACCESS")),
    };
    let kind = match kind {
        "a" => DeviceType::All,
        "c" => DeviceType::Char,
        "b" => DeviceType::Block,
        _ => return Err(bad("type must be a, c or b")),
    };
    let (major, minor) = numbers
        .split_once(':')
        .ok_or_else(|| bad("expected MAJOR:MINOR"))?;
    let number = |s: &str, max: u32| -> Result<Option<u32>, RuleError> {
        if s == "*" {
            return Ok(None);
        }
        match s.parse::<u32>() {
            Ok(n) if n <= max && s.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(n)),
            _ => Err(bad("major and minor must be * or a number within dev_t")),
        }
    };
    let (major, minor) = (number(major, MAX_MAJOR)?, number(minor, MAX_MINOR)?);
    let mut bits = 0;
    for c in acc.chars() {
        let bit = match c {
            'r' => access::READ,
            'w' => access::WRITE,
            'm' => access::MKNOD,
            _ => return Err(bad("access must be made of r, w and m")),
        };
        if bits & bit != 0 {
            return Err(bad("access repeats a letter"));
        }
        bits |= bit;
    }
    if bits == 0 {
        return Err(bad("access is empty"));
    }
    Ok(Rule {
        kind,
        major,
        minor,
        access: bits,
    })
}

/// Parses every rule of `texts`.
pub fn parse_rules(texts: &[&str]) -> Result<Vec<Rule>, RuleError> {
    texts.iter().map(|t| parse_rule(t)).collect()
}

/// eBPF encoding (include/uapi/linux/bpf_common.h and bpf.h): an opcode is class |
/// size/operation | source. Only what [`program`] uses.
mod op {
    // Classes.
    const LDX: u8 = 0x01;
    const JMP: u8 = 0x05;
    const ALU64: u8 = 0x07;
    // Load size and mode.
    const W: u8 = 0x00;
    const MEM: u8 = 0x60;
    // Source: the immediate or a register.
    const K: u8 = 0x00;
    const X: u8 = 0x08;
    // ALU operations.
    const AND: u8 = 0x50;
    const RSH: u8 = 0x70;
    const MOV: u8 = 0xb0;
    // Jump operations.
    const JNE: u8 = 0x50;
    const EXIT_OP: u8 = 0x90;

    /// `dst = *(u32 *)(src + off)`.
    pub const LDX_W: u8 = LDX | MEM | W;
    /// `dst &= imm`.
    pub const AND_K: u8 = ALU64 | AND | K;
    /// `dst >>= imm`.
    pub const RSH_K: u8 = ALU64 | RSH | K;
    /// `dst = imm`.
    pub const MOV_K: u8 = ALU64 | MOV | K;
    /// `dst = src`.
    pub const MOV_X: u8 = ALU64 | MOV | X;
    /// `if dst != imm goto +off`.
    pub const JNE_K: u8 = JMP | JNE | K;
    /// `if dst != src goto +off`.
    pub const JNE_X: u8 = JMP | JNE | X;
    /// `return r0`.
    pub const EXIT: u8 = JMP | EXIT_OP;
}

// Registers. r1 holds the context on entry and r0 the result on exit.
const R0: u8 = 0;
const R1: u8 = 1;
/// Device type (`access_type & 0xffff`).
const R_TYPE: u8 = 2;
/// Requested access (`access_type >> 16`).
const R_ACCESS: u8 = 3;
const R_MAJOR: u8 = 4;
const R_MINOR: u8 = 5;

/// Offsets in `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }`.
const CTX_ACCESS_TYPE: i16 = 0;
const CTX_MAJOR: i16 = 4;
const CTX_MINOR: i16 = 8;

// The encoding below is `struct bpf_insn` as laid out on a little-endian machine (dst_reg
// in the low nibble); big-endian hosts would need both halves swapped.
const _: () = assert!(cfg!(target_endian = "little"));

/// One eBPF instruction (`struct bpf_insn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Insn {
    code: u8,
    dst: u8,
    src: u8,
    off: i16,
    imm: i32,
}

impl Insn {
    const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Self {
        Self {
            code,
            dst,
            src,
            off,
            imm,
        }
    }

    /// The 8 bytes in memory order (opcode, dst | src << 4, off, imm), as a native u64.
    fn encode(self) -> u64 {
        let mut b = [0u8; 8];
        b[0] = self.code;
        b[1] = (self.dst & 0x0f) | (self.src << 4);
        b[2..4].copy_from_slice(&self.off.to_le_bytes());
        b[4..8].copy_from_slice(&self.imm.to_le_bytes());
        u64::from_le_bytes(b)
    }
}

/// `dst = *(u32 *)(r1 + off)`: a field of the context.
fn load_ctx(dst: u8, off: i16) -> Insn {
    Insn::new(op::LDX_W, dst, R1, off, 0)
}

/// `if reg != imm goto <next rule>` (the offset is filled in when the block is done).
fn jne_next(reg: u8, imm: u32) -> Insn {
    // Every immediate is a type, an access mask or a number checked against dev_t's
    // widths by `parse_rule`, so it fits a positive i32 (and the 64-bit compare with the
    // zero-extended u32 register is exact).
    Insn::new(op::JNE_K, reg, 0, 0, imm as i32)
}

/// `return verdict`.
fn ret(verdict: i32) -> [Insn; 2] {
    [
        Insn::new(op::MOV_K, R0, 0, 0, verdict),
        Insn::new(op::EXIT, 0, 0, 0, 0),
    ]
}

/// The instructions of one rule: each check jumps past the block when it fails; falling
/// through every check returns 1.
fn rule_block(rule: &Rule) -> Vec<Insn> {
    let mut block = Vec::new();
    match rule.kind {
        DeviceType::All => {}
        DeviceType::Char => block.push(jne_next(R_TYPE, DEV_CHAR)),
        DeviceType::Block => block.push(jne_next(R_TYPE, DEV_BLOCK)),
    }
    if rule.access != access::ALL {
        // Subset check: (requested & allowed) == requested. r1 (the context) is free
        // once its fields are loaded.
        block.push(Insn::new(op::MOV_X, R1, R_ACCESS, 0, 0));
        block.push(Insn::new(op::AND_K, R1, 0, 0, rule.access as i32));
        block.push(Insn::new(op::JNE_X, R1, R_ACCESS, 0, 0));
    }
    if let Some(major) = rule.major {
        block.push(jne_next(R_MAJOR, major));
    }
    if let Some(minor) = rule.minor {
        block.push(jne_next(R_MINOR, minor));
    }
    block.extend(ret(1));
    // Every jump lands on the first instruction after the block.
    let len = block.len();
    for (i, insn) in block.iter_mut().enumerate() {
        if insn.code == op::JNE_K || insn.code == op::JNE_X {
            insn.off = i16::try_from(len - i - 1).expect("a rule block is a few instructions");
        }
    }
    block
}

/// The BPF_PROG_TYPE_CGROUP_DEVICE program allowing exactly `rules` (deny by default),
/// one encoded instruction per element, ready for [`boxd_shim::bpf::attach_device_program`].
pub fn program(rules: &[Rule]) -> Vec<u64> {
    let mut insns = vec![
        load_ctx(R_TYPE, CTX_ACCESS_TYPE),
        Insn::new(op::AND_K, R_TYPE, 0, 0, 0xffff),
        load_ctx(R_ACCESS, CTX_ACCESS_TYPE),
        Insn::new(op::RSH_K, R_ACCESS, 0, 0, 16),
        load_ctx(R_MAJOR, CTX_MAJOR),
        load_ctx(R_MINOR, CTX_MINOR),
    ];
    let mut allows_all = false;
    for rule in rules {
        insns.extend(rule_block(rule));
        if rule.allows_all() {
            // The verifier rejects unreachable instructions, and nothing after an
            // unconditional allow can run.
            allows_all = true;
            break;
        }
    }
    if !allows_all {
        insns.extend(ret(0));
    }
    insns.into_iter().map(Insn::encode).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_all_comes_first() {
        // Plain files stand in for cgroupfs: each write replaces the content, so the
        // last allow rule is what remains, and deny holds "a".
        let dir = tempfile::tempdir().unwrap();
        for f in ["devices.deny", "devices.allow"] {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        restrict_v1(dir.path()).unwrap();
        let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();
        assert_eq!(read("devices.deny"), "a");
        assert_eq!(read("devices.allow"), *ALLOWED.last().unwrap());
        // A missing controller file is an error, not a silently open group.
        let empty = tempfile::tempdir().unwrap();
        assert!(restrict_v1(empty.path()).is_err());
    }

    #[test]
    fn every_allowed_rule_parses_and_prints_back() {
        let rules = parse_rules(ALLOWED).unwrap();
        for (rule, text) in rules.iter().zip(ALLOWED) {
            assert_eq!(rule.to_string(), *text);
        }
        assert_eq!(
            rules.last().unwrap(),
            &Rule {
                kind: DeviceType::Char,
                major: Some(136),
                minor: None,
                access: access::ALL,
            }
        );
        assert_eq!(parse_rule("a").unwrap().to_string(), "a *:* rwm");
        assert_eq!(parse_rule("b  8:*\tmr").unwrap().to_string(), "b 8:* rm");
    }

    #[test]
    fn malformed_rules_are_refused() {
        for bad in [
            "",
            "c",
            "c 1:3",
            "c 1:3 rwm x",
            "x 1:3 rwm",
            "c 1 rwm",
            "c 1:3 rwx",
            "c 1:3 rr",
            "c 4096:0 rwm",
            "c 1:1048576 rwm",
            "c +1:3 r",
            "c 1:-1 r",
            "c :3 r",
        ] {
            assert!(
                matches!(parse_rule(bad), Err(RuleError::ParseRule { .. })),
                "{bad:?} parsed"
            );
        }
        assert!(parse_rule("c 4095:1048575 r").is_ok());
    }

    /// Runs `prog` in rbpf's interpreter (an eBPF implementation independent of this
    /// encoder) on a `struct bpf_cgroup_dev_ctx`.
    fn run(prog: &[u64], kind: u32, acc: u32, major: u32, minor: u32) -> u64 {
        let bytes: Vec<u8> = prog.iter().flat_map(|i| i.to_ne_bytes()).collect();
        let vm = rbpf::EbpfVmRaw::new(Some(&bytes)).expect("rbpf accepts the program");
        let mut ctx = Vec::with_capacity(12);
        for field in [(acc << 16) | kind, major, minor] {
            ctx.extend_from_slice(&field.to_ne_bytes());
        }
        vm.execute_program(&mut ctx).expect("the program runs")
    }

    const R: u32 = access::READ;
    const W: u32 = access::WRITE;
    const M: u32 = access::MKNOD;

    #[test]
    fn the_default_program_allows_exactly_the_listed_devices() {
        let prog = program(&parse_rules(ALLOWED).unwrap());
        let cases: &[(&str, u32, u32, u32, u32, u64)] = &[
            ("read /dev/null", DEV_CHAR, R, 1, 3, 1),
            ("write /dev/null", DEV_CHAR, W, 1, 3, 1),
            ("open /dev/null rw", DEV_CHAR, R | W, 1, 3, 1),
            ("mknod /dev/null", DEV_CHAR, M, 1, 3, 1),
            ("read /dev/urandom", DEV_CHAR, R, 1, 9, 1),
            ("open /dev/ptmx", DEV_CHAR, R | W, 5, 2, 1),
            ("pty slave 0", DEV_CHAR, R | W, 136, 0, 1),
            ("pty slave 5 (wildcard minor)", DEV_CHAR, R | W, 136, 5, 1),
            ("pty slave 1048575", DEV_CHAR, R, 136, 1_048_575, 1),
            ("/dev/mem", DEV_CHAR, R, 1, 1, 0),
            ("mknod /dev/mem", DEV_CHAR, M, 1, 1, 0),
            ("/dev/kmem", DEV_CHAR, R | W, 1, 2, 0),
            ("/dev/port", DEV_CHAR, R, 1, 4, 0),
            ("/dev/kmsg", DEV_CHAR, R, 1, 11, 0),
            ("/dev/console (5:1)", DEV_CHAR, R | W, 5, 1, 0),
            ("/dev/tty1 (4:1)", DEV_CHAR, R | W, 4, 1, 0),
            ("block 1:3 (type matters)", DEV_BLOCK, R, 1, 3, 0),
            ("/dev/sda (block 8:0)", DEV_BLOCK, R, 8, 0, 0),
            ("mknod /dev/sda", DEV_BLOCK, M, 8, 0, 0),
            ("/dev/loop0 (block 7:0)", DEV_BLOCK, R | W, 7, 0, 0),
            ("block 136:5", DEV_BLOCK, R, 136, 5, 0),
            (
                "pty master side of another major (128:0)",
                DEV_CHAR,
                R,
                128,
                0,
                0,
            ),
        ];
        for &(what, kind, acc, major, minor, want) in cases {
            assert_eq!(run(&prog, kind, acc, major, minor), want, "{what}");
        }
    }

    #[test]
    fn requested_access_must_be_a_subset_of_the_rule() {
        let prog = program(&parse_rules(&["c 5:1 rw", "b 8:* r", "c *:7 m"]).unwrap());
        // 5:1 allows reading and writing, not mknod.
        assert_eq!(run(&prog, DEV_CHAR, R, 5, 1), 1);
        assert_eq!(run(&prog, DEV_CHAR, R | W, 5, 1), 1);
        assert_eq!(run(&prog, DEV_CHAR, M, 5, 1), 0);
        assert_eq!(run(&prog, DEV_CHAR, M | R, 5, 1), 0);
        // Block 8:* is read-only, and only for block devices.
        assert_eq!(run(&prog, DEV_BLOCK, R, 8, 0), 1);
        assert_eq!(run(&prog, DEV_BLOCK, R, 8, 17), 1);
        assert_eq!(run(&prog, DEV_BLOCK, W, 8, 0), 0);
        assert_eq!(run(&prog, DEV_BLOCK, R | W, 8, 0), 0);
        assert_eq!(run(&prog, DEV_CHAR, R, 8, 0), 0);
        // Wildcard major: mknod of any char minor 7, nothing else.
        assert_eq!(run(&prog, DEV_CHAR, M, 99, 7), 1);
        assert_eq!(run(&prog, DEV_CHAR, R, 99, 7), 0);
        assert_eq!(run(&prog, DEV_BLOCK, M, 99, 7), 0);
    }

    #[test]
    fn type_a_and_empty_lists() {
        // No rule: everything is denied.
        let none = program(&[]);
        assert_eq!(none.len(), 8);
        assert_eq!(run(&none, DEV_CHAR, R, 1, 3), 0);
        // `a *:* r`: read any node, of either type; nothing else.
        let read_all = program(&parse_rules(&["a *:* r"]).unwrap());
        assert_eq!(run(&read_all, DEV_CHAR, R, 1, 1), 1);
        assert_eq!(run(&read_all, DEV_BLOCK, R, 8, 0), 1);
        assert_eq!(run(&read_all, DEV_BLOCK, W, 8, 0), 0);
        // `a`: everything; what follows it is never emitted, since the kernel's verifier
        // refuses unreachable instructions.
        let all = program(&parse_rules(&["a", "c 1:3 rwm"]).unwrap());
        assert_eq!(all.len(), 6 + 2);
        assert_eq!(run(&all, DEV_BLOCK, R | W | M, 8, 0), 1);
        assert_eq!(run(&all, DEV_CHAR, M, 1, 1), 1);
    }

    #[test]
    fn instructions_are_encoded_as_the_kernel_lays_them_out() {
        // `r4 = *(u32 *)(r1 + 4)`: opcode 0x61, dst 4 in the low nibble, src 1 in the
        // high one, off 4, imm 0.
        assert_eq!(
            load_ctx(R_MAJOR, CTX_MAJOR).encode().to_le_bytes(),
            [0x61, 0x14, 4, 0, 0, 0, 0, 0]
        );
        // `if r5 != 1048575 goto +2`: 0x55.
        let mut jne = jne_next(R_MINOR, MAX_MINOR);
        jne.off = 2;
        assert_eq!(
            jne.encode().to_le_bytes(),
            [0x55, 0x05, 2, 0, 0xff, 0xff, 0x0f, 0]
        );
        // `r0 = 1; exit`: 0xb7, 0x95.
        assert_eq!(
            ret(1).map(|i| i.encode().to_le_bytes()),
            [[0xb7, 0, 0, 0, 1, 0, 0, 0], [0x95, 0, 0, 0, 0, 0, 0, 0]]
        );
    }

    #[test]
    fn root_the_kernel_verifier_accepts_the_programs() {
        boxd_testutil::require_root!();
        // Loading needs no cgroup2 mount, so this runs on either hierarchy.
        for rules in [
            ALLOWED,
            &[],
            &["a"],
            &["a", "c 1:3 rwm"],
            &["c 5:1 rw", "b 8:* r", "c *:7 m", "a *:* r"],
        ] {
            let prog = program(&parse_rules(rules).unwrap());
            if let Err(e) = boxd_shim::bpf::check_device_program(&prog) {
                panic!("{rules:?}: {e}");
            }
        }
    }
}
