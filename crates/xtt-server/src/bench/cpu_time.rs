//! CPU time of a process from /proc (Linux): what a load generator and the server it loads
//! spent in a measured phase, so a report can tell whether the generator itself was the limit.

use std::io::{Error, ErrorKind};

/// User + system CPU seconds that process `pid` (this process for `None`) has used so far.
pub fn process_cpu_secs(pid: Option<u32>) -> std::io::Result<f64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let stat = std::fs::read_to_string(&path)?;
    cpu_secs_in_stat(&stat)
        .map_err(|what| Error::new(ErrorKind::InvalidData, format!("{path}: {what}")))
}

/// User + system CPU seconds in the text of a /proc `stat` file (a process's or a thread's), or
/// what is wrong with it.
pub fn cpu_secs_in_stat(stat: &str) -> Result<f64, &'static str> {
    // The fields after the command name (which may hold spaces and parentheses) start at the
    // state, field 3.
    let (_, rest) = stat.rsplit_once(')').ok_or("no command name")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64, &'static str> {
        let field = fields.get(i).ok_or("too few fields")?;
        let n: u64 = field.parse().map_err(|_| "a CPU time is not a number")?;
        Ok(n as f64)
    };
    // utime and stime are fields 14 and 15 (1-based), i.e. 11 and 12 after the state. The
    // kernel counts them in USER_HZ, 100 on every Linux architecture in use.
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_uses_cpu_and_a_missing_one_is_an_error() {
        let before = process_cpu_secs(None).unwrap();
        let t0 = std::time::Instant::now();
        let mut x = 1u64;
        while t0.elapsed() < std::time::Duration::from_millis(60) {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let after = process_cpu_secs(Some(std::process::id())).unwrap();
        assert!(
            after - before >= 0.03,
            "60 ms of spinning shows: {before} → {after}"
        );
        // Above the kernel's pid_max (at most 2^22): never a live process.
        let missing = process_cpu_secs(Some(u32::MAX)).unwrap_err();
        assert_eq!(missing.kind(), ErrorKind::NotFound);
    }

    #[test]
    fn a_command_name_with_parentheses_and_spaces_does_not_shift_the_fields() {
        // utime 250 and stime 70 ticks, after a thread name that looks like the end of one.
        let stat = "42 (a) b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 70 0 0 20 0 1 0 5";
        assert_eq!(cpu_secs_in_stat(stat), Ok(3.2));
        assert_eq!(cpu_secs_in_stat("42 S 1 2"), Err("no command name"));
        assert_eq!(cpu_secs_in_stat("42 (x) S 1 2"), Err("too few fields"));
    }
}
