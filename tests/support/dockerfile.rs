//! A Dockerfile read the way a builder reads it, and its build stage replayed without a container
//! engine: every `COPY` copies exactly what it names (minus `.dockerignore`) from the repository
//! into a clean directory standing for the image's root, and every `RUN` is executed there, so a
//! step that needs a file no earlier `COPY` brought fails just as it would in `docker build`.
//!
//! What the replay maps: `WORKDIR /src` becomes `<root>/src`; absolute paths in a `RUN` command
//! become paths under `<root>`; a `--mount=type=cache,target=DIR` becomes a directory kept between
//! runs under `target/container-replay/` (what BuildKit keeps between builds); the image's cargo
//! registry is this machine's. Only the optimiser is turned down (`CARGO_PROFILE_RELEASE_*`), as it
//! changes the time a build takes, not which files it reads.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// One instruction: its keyword (upper case) and the rest of its line, continuations joined.
#[derive(Debug, Clone)]
pub struct Instruction {
    pub word: String,
    pub rest: String,
}

/// A stage: from its `FROM` up to the next one.
#[derive(Debug, Clone)]
pub struct Stage {
    pub name: Option<String>,
    pub instructions: Vec<Instruction>,
}

pub fn parse(text: &str) -> Vec<Stage> {
    let joined = text.replace("\\\n", " ");
    let mut stages: Vec<Stage> = Vec::new();
    let lines = joined.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'));
    for line in lines {
        let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let instruction = Instruction { word: word.to_ascii_uppercase(), rest: rest.trim().to_string() };
        if instruction.word == "FROM" {
            let parts: Vec<&str> = instruction.rest.split_whitespace().collect();
            let name = parts.iter().position(|p| p.eq_ignore_ascii_case("as")).and_then(|i| parts.get(i + 1));
            stages.push(Stage { name: name.map(|n| n.to_string()), instructions: Vec::new() });
        }
        if let Some(stage) = stages.last_mut() {
            stage.instructions.push(instruction);
        }
    }
    stages
}

impl Stage {
    pub fn all<'a>(&'a self, word: &'a str) -> impl Iterator<Item = &'a str> {
        self.instructions.iter().filter(move |i| i.word == word).map(|i| i.rest.as_str())
    }
}

/// The sources a `COPY` names and its destination; `None` for `COPY --from=…`.
pub fn copy_paths(rest: &str) -> Option<(Vec<String>, String)> {
    let parts: Vec<&str> = rest.split_whitespace().filter(|p| !p.starts_with("--chown") && !p.starts_with("--chmod")).collect();
    if parts.first().is_some_and(|p| p.starts_with("--from")) {
        return None;
    }
    let (destination, sources) = parts.split_last().expect("COPY names a destination");
    Some((sources.iter().map(|s| s.to_string()).collect(), destination.to_string()))
}

/// `.dockerignore` patterns of the build context (names, `dir/`, `*.ext`; enough for this repository).
pub struct Ignore(Vec<String>);

impl Ignore {
    pub fn read(context: &Path) -> Ignore {
        let text = std::fs::read_to_string(context.join(".dockerignore")).unwrap_or_default();
        let patterns = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'));
        Ignore(patterns.map(|p| p.trim_start_matches("./").trim_end_matches('/').to_string()).collect())
    }

    fn ignores(&self, relative: &Path) -> bool {
        let text = relative.to_string_lossy();
        self.0.iter().any(|p| match p.strip_prefix('*') {
            Some(suffix) => !text.contains('/') && text.ends_with(suffix),
            None => text == p.as_str() || text.starts_with(&format!("{p}/")),
        })
    }
}

/// The build stage replayed in `root` (a clean directory standing for `/`).
pub struct Replay<'a> {
    pub context: &'a Path,
    pub root: &'a Path,
    /// Where cache mounts live between runs.
    pub caches: &'a Path,
}

impl Replay<'_> {
    /// Runs the stage's `WORKDIR`, `COPY` and `RUN` instructions in order; the first failing
    /// instruction is the error, with its output.
    pub fn run(&self, stage: &Stage) -> Result<(), String> {
        let ignore = Ignore::read(self.context);
        let mut workdir = self.root.to_path_buf();
        std::fs::create_dir_all(self.root.join("usr/local/bin")).unwrap(); // as in the base image
        for instruction in &stage.instructions {
            match instruction.word.as_str() {
                "WORKDIR" => {
                    workdir = self.inside(&instruction.rest, &workdir);
                    std::fs::create_dir_all(&workdir).unwrap();
                }
                "COPY" => {
                    let Some((sources, destination)) = copy_paths(&instruction.rest) else { continue };
                    let into = self.inside(&destination, &workdir);
                    for source in &sources {
                        self.copy(source, &into, destination.ends_with('/') || sources.len() > 1, &ignore)
                            .map_err(|e| format!("COPY {}: {e}", instruction.rest))?;
                    }
                }
                "RUN" => self.run_command(&instruction.rest, &workdir)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// An image path (absolute, or relative to the working directory) under the replay's root.
    pub fn inside(&self, path: &str, workdir: &Path) -> PathBuf {
        match path.strip_prefix('/') {
            Some(absolute) => self.root.join(absolute),
            None => workdir.join(path),
        }
    }

    fn copy(&self, source: &str, into: &Path, into_directory: bool, ignore: &Ignore) -> Result<(), String> {
        let relative = match source.trim_start_matches("./") {
            "." | "" => Path::new(""),
            named => Path::new(named),
        };
        let from = self.context.join(relative);
        if !from.exists() || (!relative.as_os_str().is_empty() && ignore.ignores(relative)) {
            return Err(format!("{source} is not in the build context"));
        }
        if from.is_dir() {
            return copy_tree(&from, into, relative, ignore);
        }
        let to = if into_directory { into.join(from.file_name().unwrap()) } else { into.to_path_buf() };
        std::fs::create_dir_all(to.parent().unwrap()).map_err(|e| e.to_string())?;
        std::fs::copy(&from, &to).map(drop).map_err(|e| format!("{}: {e}", from.display()))
    }

    fn run_command(&self, rest: &str, workdir: &Path) -> Result<(), String> {
        let mut words = rest.split_whitespace().peekable();
        while let Some(flag) = words.next_if(|w| w.starts_with("--")) {
            if let Some(target) = flag.split(',').find_map(|p| p.strip_prefix("target=")) {
                self.mount_cache(target, workdir)?;
            }
        }
        let command: Vec<String> = words
            .map(|w| if w.starts_with('/') { self.inside(w, workdir).display().to_string() } else { w.to_string() })
            .collect();
        let mut shell = Command::new("sh");
        shell.arg("-c").arg(command.join(" ")).current_dir(workdir);
        for name in ["CARGO_TARGET_DIR", "CARGO_BUILD_TARGET_DIR", "RUSTFLAGS", "CARGO_BUILD_RUSTFLAGS"] {
            shell.env_remove(name);
        }
        shell.env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "0").env("CARGO_PROFILE_RELEASE_DEBUG", "0");
        shell.env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "256").env("CARGO_PROFILE_RELEASE_INCREMENTAL", "true");
        let out = shell.output().map_err(|e| format!("RUN {rest}: {e}"))?;
        if !out.status.success() {
            let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
            return Err(format!("RUN {rest} failed ({}):\n{text}", out.status));
        }
        Ok(())
    }

    /// A cache mount: the directory (kept between replays) linked where the image mounts it.
    fn mount_cache(&self, target: &str, workdir: &Path) -> Result<(), String> {
        let at = self.inside(target, workdir);
        if at.symlink_metadata().is_ok() {
            return Ok(());
        }
        let kept = self.caches.join(target.trim_start_matches('/').replace('/', "_"));
        std::fs::create_dir_all(&kept).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(at.parent().unwrap()).map_err(|e| e.to_string())?;
        std::os::unix::fs::symlink(&kept, &at).map_err(|e| e.to_string())
    }
}

/// Copies a directory's contents into `into`, skipping ignored paths (relative to the context).
fn copy_tree(from: &Path, into: &Path, relative: &Path, ignore: &Ignore) -> Result<(), String> {
    std::fs::create_dir_all(into).map_err(|e| e.to_string())?;
    for entry in std::fs::read_dir(from).map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| e.to_string())?;
        let name = entry.file_name();
        let child = relative.join(&name);
        if ignore.ignores(&child) {
            continue;
        }
        let to = into.join(&name);
        if entry.file_type().map_err(|e| e.to_string())?.is_dir() {
            copy_tree(&entry.path(), &to, &child, ignore)?;
        } else {
            std::fs::copy(entry.path(), &to).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}
