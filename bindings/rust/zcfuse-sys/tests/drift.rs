//! Fails when zcfuse-sys drifts from include/zcfuse.h: parses the header
//! and checks that
//!  - every `zcfuse_*` function declared there is declared here with the
//!    same parameters (count and types, C types mapped to Rust) and return
//!    type, and nothing else is;
//!  - every `#define ZCFUSE_*` integer constant and enum member has the
//!    same value here, and nothing else is here;
//!  - every struct has the same fields, and (by a C program compiled with
//!    `cc -I include` now) the same size, alignment and field offsets and
//!    sizes, and the constants the same values as C computes them. That
//!    part is skipped, saying why, only when no C compiler exists.
//!  - every function links (the library exports it).

use std::collections::{BTreeMap, BTreeSet};
use std::env;
use std::fs;
use std::io::ErrorKind;
use std::path::PathBuf;
use std::process::Command;

use zcfuse_sys as sys;

fn include_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../include")
}

/// What the header declares.
#[derive(Debug, Default)]
struct Header {
    /// name -> (return type, parameter types), each as Rust spells it.
    functions: BTreeMap<String, (String, Vec<String>)>,
    /// `#define ZCFUSE_*` and enum members: name -> value expression.
    constants: BTreeMap<String, String>,
    /// typedef name -> field names, in order.
    structs: BTreeMap<String, Vec<String>>,
    /// Enum typedef names.
    enums: Vec<String>,
    /// Function pointer typedefs: name -> (return type, parameter types).
    fn_types: BTreeMap<String, (String, Vec<String>)>,
}

fn parse_header() -> Header {
    let path = include_dir().join("zcfuse.h");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let text = strip_comments(&text);
    let mut h = Header::default();
    let mut code = String::new();
    let mut in_cplusplus = false;
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let mut line = line.trim().to_string();
        while line.ends_with('\\') {
            line.pop();
            line.push_str(lines.next().unwrap_or(""));
        }
        if let Some(directive) = line.strip_prefix('#') {
            let directive = directive.trim();
            if directive.starts_with("ifdef __cplusplus") {
                in_cplusplus = true;
            } else if directive.starts_with("endif") {
                in_cplusplus = false;
            } else if let Some(def) = directive.strip_prefix("define") {
                let def = def.trim();
                let (name, value) = def.split_once(char::is_whitespace).unwrap_or((def, ""));
                if name.starts_with("ZCFUSE_") && !value.trim().is_empty() {
                    h.constants.insert(name.to_string(), value.trim().to_string());
                }
            }
            continue;
        }
        if !in_cplusplus {
            code.push_str(&line);
            code.push('\n');
        }
    }
    for stmt in statements(&code) {
        let stmt = stmt.split_whitespace().collect::<Vec<_>>().join(" ");
        if let Some(rest) = stmt.strip_prefix("typedef struct ") {
            if let Some((_, body)) = rest.split_once('{') {
                let (fields, name) = body.rsplit_once('}').expect("struct body");
                let names = struct_fields(fields);
                h.structs.insert(name.trim().to_string(), names);
            } // else an opaque handle
        } else if let Some(rest) = stmt.strip_prefix("typedef enum ") {
            let (_, body) = rest.split_once('{').expect("enum body");
            let (members, name) = body.rsplit_once('}').expect("enum body");
            h.enums.push(name.trim().to_string());
            for m in members.split(',').map(str::trim).filter(|m| !m.is_empty()) {
                let (n, v) = m.split_once('=').expect("enum members have explicit values");
                h.constants.insert(n.trim().to_string(), v.trim().to_string());
            }
        } else if let Some(rest) = stmt.strip_prefix("typedef ") {
            // typedef RET (*NAME)(PARAMS)
            let (ret, rest) = rest.split_once("(*").unwrap_or_else(|| panic!("unknown typedef: {stmt}"));
            let (name, params) = rest.split_once(")").expect("typedef name");
            h.fn_types.insert(name.trim().to_string(), (c_type(ret), params_of(params)));
        } else if let Some(open) = stmt.find('(') {
            let (head, params) = stmt.split_at(open);
            let name = head.rsplit(|c: char| !is_ident(c)).next().expect("function name").to_string();
            let ret = &head[..head.len() - name.len()];
            assert!(name.starts_with("zcfuse_"), "a declaration that is not zcfuse_*: {stmt}");
            h.functions.insert(name, (c_type(ret), params_of(params)));
        } else {
            panic!("a statement the drift test does not understand: {stmt}");
        }
    }
    h
}

fn strip_comments(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    loop {
        let block = rest.find("/*");
        let line = rest.find("//");
        match (block, line) {
            (Some(b), l) if l.is_none_or(|l| b < l) => {
                out.push_str(&rest[..b]);
                let end = rest[b..].find("*/").expect("unterminated comment") + b + 2;
                out.push(' ');
                rest = &rest[end..];
            }
            (_, Some(l)) => {
                out.push_str(&rest[..l]);
                rest = &rest[l..];
                rest = &rest[rest.find('\n').unwrap_or(rest.len())..];
            }
            _ => {
                out.push_str(rest);
                return out;
            }
        }
    }
}

/// Splits C code at `;` outside braces.
fn statements(code: &str) -> Vec<String> {
    let (mut out, mut cur, mut depth) = (Vec::new(), String::new(), 0);
    for c in code.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ';' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    assert!(cur.trim().is_empty(), "code after the last ';': {cur}");
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// A struct body's field names, in order; the members of an anonymous
/// union (`__extension__ union { void *buf; uint64_t arena_off; };`)
/// count as fields of the struct, as they do for C's offsetof.
fn struct_fields(body: &str) -> Vec<String> {
    let body = body.replace("__extension__", " ");
    let mut names = Vec::new();
    let mut rest = body.as_str();
    while let Some(start) = rest.find("union {") {
        let before = &rest[..start];
        names.extend(before.split(';').map(str::trim).filter(|f| !f.is_empty()).map(field_name));
        let open = rest[start..].find('{').expect("union body") + start;
        let close = rest[open..].find('}').expect("union body end") + open;
        names.extend(rest[open + 1..close].split(';').map(str::trim).filter(|f| !f.is_empty()).map(field_name));
        rest = &rest[close + 1..];
        let tail = rest.split(';').next().unwrap_or("");
        assert!(tail.trim().is_empty(), "a named union (`}} {tail};`): the drift test expects anonymous ones");
        rest = &rest[rest.find(';').map_or(rest.len(), |i| i + 1)..];
    }
    names.extend(rest.split(';').map(str::trim).filter(|f| !f.is_empty()).map(field_name));
    names
}

/// "uint64_t ring_requests[ZCFUSE_STATS_OPCODES]" -> "ring_requests".
fn field_name(decl: &str) -> String {
    let decl = decl.split('[').next().unwrap();
    decl.rsplit(|c: char| !is_ident(c)).next().unwrap().to_string()
}

/// "(const zcfuse_op_t *ops, unsigned n)" -> Rust types of the parameters.
fn params_of(list: &str) -> Vec<String> {
    let list = list.trim().trim_start_matches('(').trim_end_matches(')').trim();
    if list == "void" || list.is_empty() {
        return Vec::new();
    }
    list.split(',')
        .map(|p| {
            // Drop the parameter's name: the last identifier, when a type is left.
            let p = p.trim();
            let name = p.rsplit(|c: char| !is_ident(c)).next().unwrap();
            let ty = &p[..p.len() - name.len()];
            let modifiers_only =
                ty.split(|c: char| !is_ident(c)).all(|w| matches!(w, "" | "const" | "unsigned" | "signed"));
            if modifiers_only && (ty.trim().is_empty() || matches!(name, "int" | "char" | "long" | "short")) {
                c_type(p) // no name ("int", "unsigned int"): all of it is the type
            } else {
                c_type(ty)
            }
        })
        .collect()
}

/// A C type as zcfuse-sys spells it in Rust (whitespace removed).
fn c_type(c: &str) -> String {
    let mut base: Vec<&str> = Vec::new();
    let mut base_const = false;
    // Each '*' and whether the pointer itself is const (irrelevant at the
    // top level; for `T *const *` it makes the outer pointer's pointee const).
    let mut stars: Vec<bool> = Vec::new();
    let spaced = c.replace('*', " * ");
    for w in spaced.split_whitespace() {
        match (w, stars.is_empty()) {
            ("*", _) => stars.push(false),
            ("const", true) => base_const = true,
            ("const", false) => *stars.last_mut().unwrap() = true,
            (w, true) => base.push(w),
            (w, false) => panic!("unexpected {w} after '*' in {c}"),
        }
    }
    let base = match base.join(" ").as_str() {
        "void" => "c_void".to_string(),
        "char" => "c_char".into(),
        "int" => "c_int".into(),
        "unsigned" | "unsigned int" => "c_uint".into(),
        "size_t" => "usize".into(),
        "uint8_t" => "u8".into(),
        "uint32_t" => "u32".into(),
        "int64_t" => "i64".into(),
        "uint64_t" => "u64".into(),
        t if t.starts_with("zcfuse_") => t.to_string(),
        t => panic!("a C type the drift test does not map: {t:?} in {c:?}"),
    };
    if stars.is_empty() {
        return if base == "c_void" { String::new() } else { base };
    }
    let (mut ty, mut pointee_const) = (base, base_const);
    for is_const in stars {
        ty = format!("*{}{ty}", if pointee_const { "const" } else { "mut" });
        pointee_const = is_const;
    }
    ty
}

fn squeeze(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

#[test]
fn every_header_function_is_declared_with_the_same_signature() {
    let h = parse_header();
    assert!(h.functions.len() >= 30, "parsed only {} functions: {:?}", h.functions.len(), h.functions.keys());
    let rust: BTreeMap<&str, &sys::Function> = sys::FUNCTIONS.iter().map(|f| (f.name, f)).collect();
    let mut problems = Vec::new();
    for (name, (ret, params)) in &h.functions {
        let Some(f) = rust.get(name.as_str()) else {
            problems.push(format!("{name}: in the header, not in zcfuse-sys"));
            continue;
        };
        let rparams: Vec<String> = f.params.iter().map(|p| squeeze(p)).collect();
        if rparams.len() != params.len() {
            problems.push(format!(
                "{name}: {} parameters in the header, {} in zcfuse-sys",
                params.len(),
                rparams.len()
            ));
        } else if &rparams != params {
            problems.push(format!("{name}: parameters {params:?} in the header, {rparams:?} in zcfuse-sys"));
        }
        if squeeze(f.ret) != *ret {
            problems.push(format!("{name}: returns {ret:?} in the header, {:?} in zcfuse-sys", f.ret));
        }
    }
    for name in rust.keys() {
        if !h.functions.contains_key(*name) {
            problems.push(format!("{name}: in zcfuse-sys, not in the header"));
        }
    }
    assert!(problems.is_empty(), "zcfuse-sys drifted from zcfuse.h:\n  {}", problems.join("\n  "));
}

#[test]
fn the_hook_type_matches() {
    let h = parse_header();
    let (ret, params) = h.fn_types.get("zcfuse_hook_fn").expect("zcfuse_hook_fn in the header");
    assert_eq!(h.fn_types.len(), 1, "a new function pointer type: {:?}", h.fn_types.keys());
    assert_eq!(ret, "");
    assert_eq!(params, &["*mutc_void", "*constzcfuse_hook_info_t", "*constc_void", "usize"]);
    // And zcfuse-sys's alias has exactly that signature (checked by rustc).
    unsafe extern "C" fn hook(
        _: *mut std::ffi::c_void,
        _: *const sys::zcfuse_hook_info_t,
        _: *const std::ffi::c_void,
        _: usize,
    ) {
    }
    let _: sys::zcfuse_hook_fn = Some(hook);
}

#[test]
fn every_function_links() {
    let mut n = 0;
    sys::for_each_function_address(&mut |name, addr| {
        assert_ne!(addr, 0, "{name}");
        n += 1;
    });
    assert_eq!(n, sys::FUNCTIONS.len());
}

/// Evaluates a header constant's C expression: integers (with u/U/l/L
/// suffixes), casts to integer types, sizeof(void *), other ZCFUSE_
/// constants, ( ) + - * / << >> & |.
fn eval(expr: &str, consts: &BTreeMap<String, String>) -> i128 {
    let mut e = expr.to_string();
    for cast in ["(size_t)", "(uint32_t)", "(uint64_t)", "(int)", "(unsigned)", "(int64_t)"] {
        e = e.replace(cast, " ");
    }
    let ptr = std::mem::size_of::<*const ()>().to_string();
    for s in ["sizeof(void *)", "sizeof(void*)", "sizeof (void *)"] {
        e = e.replace(s, &ptr);
    }
    let toks = tokens(&e);
    let mut p = Parser { toks: &toks, pos: 0, consts };
    let v = p.or();
    assert_eq!(p.pos, toks.len(), "cannot evaluate {expr:?}");
    v
}

fn tokens(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i] as char;
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_alphanumeric() || c == '_' {
            let start = i;
            while i < b.len() && ((b[i] as char).is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(s[start..i].to_string());
        } else if s[i..].starts_with("<<") || s[i..].starts_with(">>") {
            out.push(s[i..i + 2].to_string());
            i += 2;
        } else {
            out.push(c.to_string());
            i += 1;
        }
    }
    out
}

struct Parser<'a> {
    toks: &'a [String],
    pos: usize,
    consts: &'a BTreeMap<String, String>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&str> {
        self.toks.get(self.pos).map(String::as_str)
    }
    fn binary(&mut self, ops: &[&str], next: fn(&mut Self) -> i128, apply: fn(&str, i128, i128) -> i128) -> i128 {
        let mut v = next(self);
        while let Some(op) = self.peek().filter(|t| ops.contains(t)).map(str::to_string) {
            self.pos += 1;
            v = apply(&op, v, next(self));
        }
        v
    }
    fn or(&mut self) -> i128 {
        self.binary(&["|"], Self::and, |_, a, b| a | b)
    }
    fn and(&mut self) -> i128 {
        self.binary(&["&"], Self::shift, |_, a, b| a & b)
    }
    fn shift(&mut self) -> i128 {
        self.binary(&["<<", ">>"], Self::sum, |op, a, b| if op == "<<" { a << b } else { a >> b })
    }
    fn sum(&mut self) -> i128 {
        self.binary(&["+", "-"], Self::product, |op, a, b| if op == "+" { a + b } else { a - b })
    }
    fn product(&mut self) -> i128 {
        self.binary(&["*", "/"], Self::atom, |op, a, b| if op == "*" { a * b } else { a / b })
    }
    fn atom(&mut self) -> i128 {
        let t = self.peek().unwrap_or_else(|| panic!("expression ends early: {:?}", self.toks)).to_string();
        self.pos += 1;
        match t.as_str() {
            "(" => {
                let v = self.or();
                assert_eq!(self.peek(), Some(")"), "unbalanced ( in {:?}", self.toks);
                self.pos += 1;
                v
            }
            "-" => -self.atom(),
            t if t.starts_with("ZCFUSE_") => eval(&self.consts[t], self.consts),
            t => {
                let digits = t.trim_end_matches(['u', 'U', 'l', 'L']);
                match digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
                    Some(hex) => i128::from_str_radix(hex, 16),
                    None => digits.parse(),
                }
                .unwrap_or_else(|_| panic!("not a number: {t:?} in {:?}", self.toks))
            }
        }
    }
}

#[test]
fn every_header_constant_has_the_same_value() {
    let h = parse_header();
    assert!(h.constants.len() >= 25, "parsed only {} constants", h.constants.len());
    let rust: BTreeMap<&str, i128> = sys::CONSTANTS.iter().copied().collect();
    let mut problems = Vec::new();
    for (name, expr) in &h.constants {
        let want = eval(expr, &h.constants);
        match rust.get(name.as_str()) {
            None => problems.push(format!("{name} = {expr}: in the header, not in zcfuse-sys")),
            Some(&got) if got != want => {
                problems.push(format!("{name}: {want} ({expr}) in the header, {got} in zcfuse-sys"))
            }
            Some(_) => {}
        }
    }
    for name in rust.keys() {
        if !h.constants.contains_key(*name) {
            problems.push(format!("{name}: in zcfuse-sys, not in the header"));
        }
    }
    assert!(problems.is_empty(), "zcfuse-sys drifted from zcfuse.h:\n  {}", problems.join("\n  "));
}

#[test]
fn every_struct_has_the_same_fields() {
    let h = parse_header();
    let rust: BTreeMap<&str, &sys::Struct> = sys::STRUCTS.iter().map(|s| (s.name, s)).collect();
    let header: BTreeSet<&str> = h.structs.keys().map(String::as_str).collect();
    assert_eq!(header, rust.keys().copied().collect(), "the structs differ");
    for (name, fields) in &h.structs {
        let rfields: Vec<&str> = rust[name.as_str()].fields.iter().map(|f| f.name).collect();
        assert_eq!(&rfields, fields, "{name}: fields differ");
    }
    assert_eq!(h.enums, ["zcfuse_transport_t"], "the enums differ");
}

/// Compiles and runs a C program that prints every struct's layout and
/// every constant, as the C compiler sees the header; None if there is no
/// C compiler.
fn c_layouts(h: &Header) -> Option<String> {
    let cc = env::var("CC").unwrap_or_else(|_| "cc".into());
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("zcfuse-drift");
    fs::create_dir_all(&dir).expect("mkdir");
    let mut c = String::from("#include <stdio.h>\n#include <stddef.h>\n#include \"zcfuse.h\"\nint main(void) {\n");
    for (name, fields) in &h.structs {
        c += &format!("    printf(\"struct {name} %zu %zu\\n\", sizeof({name}), _Alignof({name}));\n");
        for f in fields {
            c += &format!(
                "    printf(\"field {name}.{f} %zu %zu\\n\", offsetof({name}, {f}), sizeof((({name} *)0)->{f}));\n"
            );
        }
    }
    for e in &h.enums {
        c += &format!("    printf(\"enum {e} %zu\\n\", sizeof({e}));\n");
    }
    for name in h.constants.keys() {
        c += &format!("    printf(\"const {name} %lld\\n\", (long long)({name}));\n");
    }
    c += "    return 0;\n}\n";
    let src = dir.join("layout.c");
    let exe = dir.join("layout");
    fs::write(&src, c).expect("write layout.c");
    let out = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Werror", "-I"])
        .arg(include_dir())
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .output();
    match out {
        Err(e) if e.kind() == ErrorKind::NotFound => {
            eprintln!("SKIP: no C compiler ({cc}: {e}): struct layouts not compared with C");
            return None;
        }
        Err(e) => panic!("run {cc}: {e}"),
        Ok(o) if !o.status.success() => panic!("{cc} {}: {}", src.display(), String::from_utf8_lossy(&o.stderr)),
        Ok(_) => {}
    }
    let out = Command::new(&exe).output().expect("run the layout program");
    assert!(out.status.success());
    Some(String::from_utf8(out.stdout).expect("utf-8"))
}

#[test]
fn struct_layouts_and_constants_match_the_c_compiler() {
    let h = parse_header();
    let Some(c) = c_layouts(&h) else { return };
    let rust: BTreeMap<&str, &sys::Struct> = sys::STRUCTS.iter().map(|s| (s.name, s)).collect();
    let consts: BTreeMap<&str, i128> = sys::CONSTANTS.iter().copied().collect();
    let mut problems = Vec::new();
    let mut checked = 0;
    for line in c.lines() {
        let w: Vec<&str> = line.split(' ').collect();
        match w[0] {
            "struct" => {
                let s = rust[w[1]];
                let (size, align): (usize, usize) = (w[2].parse().unwrap(), w[3].parse().unwrap());
                if (s.size, s.align) != (size, align) {
                    problems.push(format!("{}: size/align {size}/{align} in C, {}/{} in Rust", w[1], s.size, s.align));
                }
            }
            "field" => {
                let (st, f) = w[1].split_once('.').unwrap();
                let rf = rust[st].fields.iter().find(|x| x.name == f).expect("field");
                let (off, size): (usize, usize) = (w[2].parse().unwrap(), w[3].parse().unwrap());
                if (rf.offset, rf.size) != (off, size) {
                    problems
                        .push(format!("{st}.{f}: offset/size {off}/{size} in C, {}/{} in Rust", rf.offset, rf.size));
                }
            }
            "enum" => {
                let size: usize = w[2].parse().unwrap();
                if size != std::mem::size_of::<sys::zcfuse_transport_t>() {
                    problems.push(format!("{}: size {size} in C", w[1]));
                }
            }
            "const" => {
                let v: i128 = w[2].parse().unwrap();
                if consts.get(w[1]) != Some(&v) {
                    problems.push(format!("{}: {v} in C, {:?} in Rust", w[1], consts.get(w[1])));
                }
                // The test's own evaluator agrees with C, too.
                assert_eq!(eval(&h.constants[w[1]], &h.constants), v, "{}", w[1]);
            }
            _ => panic!("unexpected line {line}"),
        }
        checked += 1;
    }
    let want = h.structs.values().map(|f| 1 + f.len()).sum::<usize>() + h.enums.len() + h.constants.len();
    assert_eq!(checked, want, "lines from the C program");
    assert!(problems.is_empty(), "zcfuse-sys layouts drifted from zcfuse.h:\n  {}", problems.join("\n  "));
}

#[test]
fn the_drift_test_notices_drift() {
    // The parser and type mapping on declarations like the header's.
    assert_eq!(c_type("const zcfuse_op_t *"), "*constzcfuse_op_t");
    assert_eq!(c_type("zcfuse_arena_t **"), "*mut*mutzcfuse_arena_t");
    assert_eq!(c_type("const char *const *"), "*const*constc_char");
    assert_eq!(params_of("(void)"), Vec::<String>::new());
    assert_eq!(params_of("(zcfuse_session_t *session, unsigned n, int)"), ["*mutzcfuse_session_t", "c_uint", "c_int"]);
    let consts = BTreeMap::from([("ZCFUSE_A".to_string(), "(1u << 4)".to_string())]);
    assert_eq!(eval("(24 + 2 * sizeof(void *))", &consts), 24 + 2 * std::mem::size_of::<usize>() as i128);
    assert_eq!(eval("((size_t)1 << 30)", &consts), 1 << 30);
    assert_eq!(eval("ZCFUSE_A | 0x3", &consts), 19);
    assert_eq!(
        struct_fields(" uint32_t a; __extension__ union { void *buf; uint64_t off; }; uint64_t len[2]; "),
        ["a", "buf", "off", "len"]
    );
}
