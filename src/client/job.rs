//! One compile as the farm sees it (`Job`): the compiler, its arguments and the plan
//! `args::classify` made of them, the working directory and the compiler's identity; and what
//! is made from it for a box: the hello (`Job::request`), whether it ships its sources
//! (`Client::shipping`), and what it ships (`Client::scan`: from the build's scan server,
//! else scanned here).

use super::ship::{self, Shipment};
use super::state::State;
use super::{cpp, identity, ms, scan_server, Client, Shipping};
use crate::rules::args::{Plan, Stage};
use crate::rules::hosts::HostList;
use crate::rules::ship_args::ShipPlan;
use crate::wire::protocol::{JobRequest, Mode};
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One compile the farm may take.
pub(super) struct Job<'a> {
    /// The real compiler, as found on PATH.
    pub program: &'a Path,
    /// Its file name: what the box runs its own of.
    pub name: String,
    /// The command's arguments, after the compiler.
    pub args: &'a [OsString],
    pub plan: Plan,
    pub cwd: PathBuf,
    /// Who the compiler is (see `identity`): a box must have the same.
    pub identity: String,
    /// The locale variables the box's compiler gets, as this one does.
    pub locale: Vec<(String, String)>,
    /// How many preprocessors (or scans) may run here at once (`cpp::limit`).
    pub cpp_limit: u32,
}

impl Job<'_> {
    /// The hello for this job: preprocessed here, or shipping its sources with `shipment`;
    /// `compress` as the host list says for the box.
    pub fn request(&self, compress: bool, shipment: Option<&Shipment>) -> JobRequest {
        let plan = &self.plan;
        let (mode, args, input_ext) = match shipment {
            None => (
                Mode::Preprocessed,
                plan.remote_args
                    .iter()
                    .map(|a| a.as_bytes().to_vec())
                    .collect(),
                plan.remote_input_ext.to_string(),
            ),
            Some(sh) => (
                Mode::Sources,
                sh.literal.iter().map(|a| a.as_bytes().to_vec()).collect(),
                // The box names the source as the command does; this is only for its logs.
                String::new(),
            ),
        };
        JobRequest {
            mode,
            compress,
            compiler: self.name.clone(),
            identity: self.identity.clone(),
            args,
            input_ext,
            output_ext: match plan.stage {
                Stage::Object => "o".into(),
                Stage::Assembly => "s".into(),
            },
            cwd: self.cwd.as_os_str().as_bytes().to_vec(),
            label: plan.source.to_string_lossy().into_owned(),
            locale: self.locale.clone(),
        }
    }

    /// The source as the command names it, for the scan (which takes UTF-8 names only).
    fn source(&self) -> &str {
        self.plan.source.to_str().unwrap_or_default()
    }
}

impl Client<'_> {
    /// The job for `plan`, run with `program` (called `name`) and `args`. `Err`: compile
    /// locally, for this reason.
    pub(super) fn job<'a>(
        &self,
        program: &'a Path,
        name: String,
        args: &'a [OsString],
        plan: Plan,
        list: &HostList,
        state: &State,
    ) -> Result<Job<'a>, String> {
        let identity = identity::get(program, &state.state_dir())
            .map_err(|e| format!("cannot ask {} who it is: {e}", program.display()))?;
        let cwd = std::env::current_dir().map_err(|e| format!("no working directory: {e}"))?;
        let locale = crate::wire::protocol::LOCALE_VARS
            .iter()
            .filter_map(|k| Some((k.to_string(), self.env.var(k)?)))
            .filter(|(_, v)| crate::wire::protocol::is_locale_value(v))
            .collect();
        Ok(Job {
            program,
            name,
            args,
            plan,
            cwd,
            identity,
            locale,
            cpp_limit: cpp::limit(list),
        })
    }

    /// Whether `job` ships its sources (the box preprocesses) or is preprocessed here, as
    /// the job and the user allow; the reason it does not is logged.
    pub(super) fn shipping(&self, job: &Job) -> Shipping {
        match self.ship_plan(job) {
            Ok(sp) => Shipping::Planned(sp),
            Err(why) => {
                self.log(format!("preprocessing here: {why}"));
                Shipping::Off
            }
        }
    }

    /// Whether this job may ship its sources, and how; `Err` says why not.
    fn ship_plan(&self, job: &Job) -> Result<ShipPlan, String> {
        if self.env.var("RCC_SHIP").is_some_and(|v| v == "0") {
            return Err("RCC_SHIP=0".into());
        }
        if let Some(why) = ship::env_blocks(|k| self.env.var_os(k)) {
            return Err(why);
        }
        crate::rules::ship_args::ship_plan(job.args, &job.plan)
    }

    /// Scans a job that plans to ship: `shipping` becomes what it ships, or `Off` (the
    /// reason logged). `Err`: compile locally.
    pub(super) fn scan(
        &self,
        job: &Job,
        state: &State,
        shipping: &mut Shipping,
    ) -> Result<(), String> {
        let Shipping::Planned(sp) = &*shipping else {
            return Ok(());
        };
        // Scanning is the master's cost in this mode: bounded like preprocessing.
        let slot = cpp::slot(state, job.cpp_limit)?;
        let t = Instant::now();
        let (made, by) = self.shipment(job, sp);
        drop(slot);
        *shipping = match made {
            Ok(sh) => {
                self.log(format!(
                    "scanned {} in {} ms {by}: {} files, {} bytes",
                    job.source(),
                    ms(t.elapsed()),
                    sh.files,
                    sh.bytes
                ));
                Shipping::Scanned(sh)
            }
            Err(why) => {
                self.log(format!("preprocessing here: {why}"));
                Shipping::Off
            }
        };
        Ok(())
    }

    /// The job's shipment from the build's scan server, else scanned here; and which of
    /// the two it was, for the log.
    fn shipment(&self, job: &Job, sp: &ShipPlan) -> (Result<Shipment, String>, &'static str) {
        let use_server = !self.env.var("RCC_SCAN_SERVER").is_some_and(|v| v == "0");
        if let Some(made) = use_server.then(|| self.ask_scan_server(job, sp)).flatten() {
            return (made, "by the scan server");
        }
        let rcc_dir = &self.settings.rcc_dir;
        let made = ship::Scanner::for_one_job(rcc_dir)
            .map_err(|e| format!("RCC_DIR/files: {e}"))
            .and_then(|mut scanner| {
                let scan = ship::Scan {
                    compiler: job.program,
                    identity: &job.identity,
                    sp,
                    source: job.source(),
                    cwd: &job.cwd,
                    rcc_dir,
                };
                ship::prepare(&mut scanner, &scan)
            });
        (made, "here")
    }

    /// The shipment as the build's scan server made it; `None` when no server answered
    /// (one is started for the next jobs).
    fn ask_scan_server(&self, job: &Job, sp: &ShipPlan) -> Option<Result<Shipment, String>> {
        let rcc_dir = &self.settings.rcc_dir;
        let req = scan_server::Request {
            build: scan_server::this_build(),
            compiler: job.program.to_path_buf(),
            identity: job.identity.clone(),
            cwd: job.cwd.clone(),
            args: job.args.to_vec(),
        };
        match scan_server::ask(rcc_dir, &req) {
            Ok(scan_server::Reply::Shipped {
                body,
                files,
                bytes,
                predef,
            }) => Some(Ok(Shipment::encoded(
                body,
                files as usize,
                bytes,
                sp,
                predef,
            ))),
            Ok(scan_server::Reply::Refused(why)) => Some(Err(why)),
            Err(why) => {
                self.log(format!("{why}; scanning here"));
                if let Err(e) = scan_server::start(rcc_dir) {
                    self.log(format!("cannot start a scan server: {e}"));
                }
                None
            }
        }
    }
}
