//! Backend selection: done once, at the edge, into a `Device` value passed down.
//!
//! In Burn 0.22 the device picks the backend at runtime, so `--backend` only decides which
//! `Device` is built here. wgpu is probed with the graphics API pinned (Vulkan on Linux),
//! because the automatic API choice can pick an OpenGL ES adapter that hangs at the first
//! kernel where no Vulkan driver exists.

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::config::ModelKind;
use crate::error::{PatronError, Result};

/// What the user asked for with `--backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendChoice {
    /// wgpu on a hardware GPU when one is found, the flex CPU backend otherwise (and for
    /// text_bag models and tabular scoring, which a GPU does no faster).
    Auto,
    /// wgpu (any adapter, software ones included).
    Wgpu,
    /// Burn's ndarray CPU backend.
    Ndarray,
    /// Burn's pure-Rust flex CPU backend.
    Flex,
}

/// The device chosen, with what to tell the user about it.
#[derive(Debug, Clone)]
pub struct Backend {
    /// The device everything runs on (without autodiff; training adds it).
    pub device: Device,
    /// `wgpu`, `ndarray` or `flex`: recorded in manifests.
    pub name: &'static str,
    /// One line describing the device and why it was picked.
    pub description: String,
}

/// The graphics API wgpu is pinned to on this platform.
fn native_graphics_api() -> burn::tensor::wgpu::WgpuBackend {
    use burn::tensor::wgpu::WgpuBackend;
    if cfg!(target_os = "macos") {
        WgpuBackend::Metal
    } else if cfg!(target_os = "windows") {
        WgpuBackend::Dx12
    } else {
        WgpuBackend::Vulkan
    }
}

/// A wgpu adapter that was found.
#[derive(Clone)]
struct Adapter {
    device: Device,
    name: String,
    software: bool,
    /// What the runtime compiles kernels for on it (shader language and target).
    compiler: String,
}

/// Find wgpu's adapter (the `gpu`-th discrete one when given). wgpu's runtime can be set
/// up only once per process (a second setup fails with "Service already initialized"),
/// so each answer is kept and given again.
fn probe_wgpu(gpu: Option<usize>) -> std::result::Result<Adapter, String> {
    type Probed = Vec<(Option<usize>, std::result::Result<Adapter, String>)>;
    static PROBED: std::sync::Mutex<Probed> = std::sync::Mutex::new(Vec::new());
    let mut probed = PROBED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, answer)) = probed.iter().find(|(g, _)| *g == gpu) {
        return answer.clone();
    }
    let answer = set_up_wgpu(gpu);
    probed.push((gpu, answer.clone()));
    answer
}

fn set_up_wgpu(gpu: Option<usize>) -> std::result::Result<Adapter, String> {
    let mut options = Device::wgpu_options().graphics_api(native_graphics_api());
    if let Some(n) = gpu {
        options = options.device_kind(burn::tensor::DeviceKind::DiscreteGpu(n));
    }
    let device = options.init().map_err(|e| {
        let e = first_line(&e.to_string());
        match no_adapter_hint(library_loads(VULKAN_LOADER), nvidia_driver_loaded()) {
            Some(hint) => format!("{e} - {hint}"),
            None => e,
        }
    })?;
    let identity = device.identity();
    let name = identity
        .as_ref()
        .map(|i| i.name.clone())
        .unwrap_or_else(|| "unknown adapter".into());
    let compiler = identity
        .as_ref()
        .map(|i| i.fingerprint.clone())
        .unwrap_or_default();
    let lower = name.to_lowercase();
    // A software rasterizer has no physical card behind it.
    let software = identity.as_ref().is_some_and(|i| i.physical.is_none())
        || ["llvmpipe", "lavapipe", "swiftshader", "software"]
            .iter()
            .any(|s| lower.contains(s));
    Ok(Adapter {
        device,
        name,
        software,
        compiler,
    })
}

/// The Vulkan loader wgpu opens on Linux.
const VULKAN_LOADER: &str = "libvulkan.so.1";

/// What to fix when wgpu found no adapter, where the machine tells: wgpu's own error does
/// not say that the Vulkan loader is missing, or that an NVIDIA GPU's Vulkan driver is not
/// there (containers get it only with the graphics capability). Both were the case on a
/// lent GPU machine (BENCHMARKS.md).
fn no_adapter_hint(loader_loads: bool, nvidia_driver: bool) -> Option<&'static str> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    if !loader_loads {
        Some(
            "no Vulkan loader (libvulkan.so.1) is installed: install it (Debian/Ubuntu: apt install libvulkan1)",
        )
    } else if nvidia_driver {
        Some(
            "an NVIDIA driver is loaded but no Vulkan driver answered: install the driver's Vulkan support, or in a container set NVIDIA_DRIVER_CAPABILITIES=all (Vulkan needs `graphics`)",
        )
    } else {
        None
    }
}

/// Whether the dynamic library `name` can be loaded (always true off Linux, where the
/// hint that uses it is not given).
fn library_loads(name: &str) -> bool {
    #[cfg(target_os = "linux")]
    {
        let Ok(name) = std::ffi::CString::new(name) else {
            return false;
        };
        // SAFETY: dlopen with a valid C string; the handle is closed at once and nothing
        // from the library is called.
        unsafe {
            let handle = libc::dlopen(name.as_ptr(), libc::RTLD_LAZY | libc::RTLD_LOCAL);
            if handle.is_null() {
                return false;
            }
            libc::dlclose(handle);
            true
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = name;
        true
    }
}

/// Whether an NVIDIA kernel driver is loaded (a GPU is there, whatever user space has).
fn nvidia_driver_loaded() -> bool {
    std::path::Path::new("/proc/driver/nvidia/version").exists()
}

#[allow(deprecated)] // ndarray is deprecated upstream but is the CPU backend users asked for
fn ndarray_device() -> Device {
    Device::ndarray()
}

fn cpu(name: &'static str, why: &str) -> Backend {
    let device = match name {
        "flex" => Device::flex(),
        _ => ndarray_device(),
    };
    Backend {
        device,
        name,
        description: format!("{name} (CPU, {} threads){why}", threads()),
    }
}

/// Raise glibc's mmap and trim thresholds. By default every large tensor buffer is a
/// fresh mmap that is faulted in and unmapped on each op; keeping them in the heap made
/// the CPU backends markedly faster (figures in README.md). Call once at start-up.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before other threads
    // allocate and with values glibc accepts (the mmap threshold max is 32 MiB on 64-bit).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
        // Blocks above that ceiling (a text encoder's 47 MB word-embedding gradient and
        // its optimizer temporaries) come from the heap too instead of a fresh mapping
        // each step: 2.6x fewer page faults fine-tuning MiniLM (1.55M to 0.59M in an
        // 800-row epoch), `predict` unchanged. glibc still maps what a heap cannot hold.
        libc::mallopt(libc::M_MMAP_MAX, 0);
    }
}

/// Hand the heap's free pages back to the system (glibc keeps up to 512 MiB of them, see
/// [`tune_allocator`]). Called before an epoch checkpoint is serialized: a text encoder's
/// optimizer steps leave hundreds of MB free in the heap, which the checkpoint's buffers
/// would otherwise add to rather than reuse.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the system; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Run `work` on a thread of the rayon pool the flex backend splits its matrix products
/// over. Called from outside the pool, every split parks the caller and wakes workers; from
/// a worker, the caller keeps computing and an idle worker takes half (figures in
/// BENCHMARKS.md). The pool's threads get the main thread's stack size, since the whole
/// command runs there. Call once, at the edge.
pub fn on_compute_pool<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    // Fails only when the pool was already built; it then keeps the stacks it has.
    let _ = rayon::ThreadPoolBuilder::new()
        .stack_size(8 << 20)
        .build_global();
    rayon::scope(|_| work())
}

/// What `patron info` reports: the first thing to run when a GPU is not picked up.
#[derive(Debug, Clone)]
pub struct SystemInfo {
    /// patron's version.
    pub version: &'static str,
    /// Backends compiled into this binary.
    pub backends: Vec<&'static str>,
    /// Threads available to the CPU backends.
    pub threads: usize,
    /// The graphics API wgpu is probed on.
    pub graphics_api: String,
    /// The wgpu adapter found (name, software?, kernel target), or why none was.
    pub adapter: std::result::Result<(String, bool, String), String>,
    /// Every adapter the driver lists on that API.
    pub adapters: Vec<ListedAdapter>,
    /// What `--backend auto` picks here.
    pub auto: String,
}

/// Probe the machine once and describe it (`gpu`: the discrete GPU `--device` names).
pub fn system_info(gpu: Option<usize>) -> SystemInfo {
    let adapter = probe_wgpu(gpu).map(|a| (a.name, a.software, a.compiler));
    let auto = match &adapter {
        Ok((name, false, _)) => format!("wgpu on {name}"),
        Ok((name, true, _)) => format!("flex (software adapter {name} skipped)"),
        Err(_) => "flex (no GPU adapter)".to_string(),
    };
    SystemInfo {
        version: env!("CARGO_PKG_VERSION"),
        backends: vec!["wgpu", "flex", "ndarray"],
        threads: threads(),
        graphics_api: format!("{:?}", native_graphics_api()),
        adapter: adapter.map_err(|e| first_line(&e)),
        adapters: list_adapters(),
        auto,
    }
}

/// An adapter the driver lists on the pinned graphics API (`patron info`).
#[derive(Debug, Clone)]
pub struct ListedAdapter {
    /// Its name.
    pub name: String,
    /// Discrete GPU, integrated GPU, virtual GPU, CPU (software) or other.
    pub kind: &'static str,
    /// The driver and its version, as the driver reports them.
    pub driver: String,
    /// The `--device N` that picks it (discrete GPUs only).
    pub device_flag: Option<usize>,
}

/// Every adapter the driver lists on the pinned graphics API, in wgpu's order (the order
/// `--device N` counts discrete GPUs in). Only the list is asked for: no device is opened.
fn list_adapters() -> Vec<ListedAdapter> {
    use burn::backend::wgpu::wgpu;
    use burn::tensor::wgpu::WgpuBackend;
    // The API the probe is pinned to, so the list and the adapter picked agree.
    let backends = match native_graphics_api() {
        WgpuBackend::Metal => wgpu::Backends::METAL,
        WgpuBackend::Dx12 => wgpu::Backends::DX12,
        _ => wgpu::Backends::VULKAN,
    };
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    let mut discrete = 0;
    block_on(instance.enumerate_adapters(backends))
        .iter()
        .map(|adapter| {
            let info = adapter.get_info();
            let (kind, device_flag) = match info.device_type {
                wgpu::DeviceType::DiscreteGpu => {
                    discrete += 1;
                    ("discrete GPU", Some(discrete - 1))
                }
                wgpu::DeviceType::IntegratedGpu => ("integrated GPU", None),
                wgpu::DeviceType::VirtualGpu => ("virtual GPU", None),
                wgpu::DeviceType::Cpu => ("CPU (software)", None),
                wgpu::DeviceType::Other => ("other", None),
            };
            ListedAdapter {
                name: info.name,
                kind,
                driver: format!("{} {}", info.driver, info.driver_info)
                    .trim()
                    .to_string(),
                device_flag,
            }
        })
        .collect()
}

/// Run a future that needs no executor to completion (wgpu's native adapter list is ready
/// at once).
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
        std::thread::yield_now();
    }
}

/// Threads the CPU backends may use: rayon's pool size (`RAYON_NUM_THREADS`, or one per core).
pub fn threads() -> usize {
    rayon::current_num_threads()
}

/// Build the device for a `--backend` choice.
pub fn select(choice: BackendChoice) -> Result<Backend> {
    select_device(choice, None)
}

/// Build the device for a `--backend` choice and an optional `--device N`: the N-th
/// discrete GPU (0-based) instead of wgpu's default choice. For other adapter kinds,
/// Burn's `CUBECL_WGPU_DEFAULT_DEVICE` variable (README.md).
pub fn select_device(choice: BackendChoice, gpu: Option<usize>) -> Result<Backend> {
    if let Some(n) = gpu
        && matches!(choice, BackendChoice::Ndarray | BackendChoice::Flex)
    {
        return Err(PatronError::Usage(format!(
            "--device {n} selects a GPU; use it with --backend wgpu or auto"
        )));
    }
    let named = gpu.map_or(String::new(), |n| format!(" (--device {n})"));
    match choice {
        BackendChoice::Ndarray => Ok(cpu("ndarray", "")),
        BackendChoice::Flex => Ok(cpu("flex", "")),
        BackendChoice::Wgpu => match probe_wgpu(gpu) {
            Ok(a) => Ok(Backend {
                device: a.device,
                name: "wgpu",
                description: format!(
                    "wgpu on {}{}",
                    a.name,
                    if a.software {
                        " (software adapter)"
                    } else {
                        ""
                    }
                ),
            }),
            Err(e) => Err(PatronError::Usage(format!(
                "--backend wgpu{named}: no GPU adapter found ({}); install a Vulkan driver, check `patron info`, or use --backend ndarray",
                first_line(&e)
            ))),
        },
        BackendChoice::Auto => match probe_wgpu(gpu) {
            Ok(a) if !a.software => Ok(Backend {
                device: a.device,
                name: "wgpu",
                description: format!("wgpu on {} (auto)", a.name),
            }),
            // The CPU fallback is flex: it trained the shipped configs 1.3-1.4x faster than
            // ndarray with the same metrics (README.md, "Backends").
            Ok(a) => Ok(cpu(
                "flex",
                &format!(
                    " (auto: only the software adapter {} was found, and the CPU backend is faster)",
                    a.name
                ),
            )),
            Err(e) => Ok(cpu(
                "flex",
                &format!(" (auto: no GPU adapter: {})", first_line(&e)),
            )),
        },
    }
}

/// What a command does with a model, for [`select_for_model`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// `train`, `tune`.
    Train,
    /// `predict`, `evaluate`, `drift`.
    Score,
}

/// Build the device for `work` on a model of `kind`: [`select_device`], except that a
/// plain `auto` (no `--device`) leaves the GPU out where it cannot pay
/// ([`ModelKind::cpu_under_auto`]); `--backend wgpu` always gets it.
pub fn select_for_model(
    choice: BackendChoice,
    gpu: Option<usize>,
    kind: ModelKind,
    work: Work,
) -> Result<Backend> {
    if choice == BackendChoice::Auto
        && gpu.is_none()
        && let Some(why) = kind.cpu_under_auto(work == Work::Score)
    {
        return Ok(cpu(
            "flex",
            &format!(" (auto: {why}; --backend wgpu for a GPU)"),
        ));
    }
    select_device(choice, gpu)
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn a_missing_vulkan_loader_or_nvidia_vulkan_driver_is_named() {
        assert!(library_loads("libc.so.6"));
        assert!(!library_loads("libpatron-no-such-library.so.9"));
        let missing_loader = no_adapter_hint(false, true).unwrap();
        assert!(missing_loader.contains("libvulkan1"), "{missing_loader}");
        let nvidia = no_adapter_hint(true, true).unwrap();
        assert!(nvidia.contains("NVIDIA_DRIVER_CAPABILITIES"), "{nvidia}");
        assert_eq!(no_adapter_hint(true, false), None);
    }

    #[test]
    fn auto_leaves_the_gpu_out_where_it_cannot_pay() {
        let on = |choice, gpu, kind, work| select_for_model(choice, gpu, kind, work);
        let plain = select(BackendChoice::Auto).unwrap().name;
        for (kind, work, cpu_why) in [
            (
                ModelKind::TabularMlp,
                Work::Score,
                Some("scores faster on the CPU"),
            ),
            (ModelKind::TextBag, Work::Score, Some("n-gram table")),
            (ModelKind::TextBag, Work::Train, Some("n-gram table")),
            (ModelKind::TabularMlp, Work::Train, None),
            (ModelKind::TextTransformer, Work::Score, None),
            (ModelKind::TextTransformer, Work::Train, None),
        ] {
            let b = on(BackendChoice::Auto, None, kind, work).unwrap();
            match cpu_why {
                Some(why) => {
                    assert_eq!(b.name, "flex", "{kind:?} {work:?}");
                    assert!(b.description.contains(why), "{}", b.description);
                }
                None => assert_eq!(b.name, plain, "{kind:?} {work:?}: {}", b.description),
            }
        }
        // A named backend, or a GPU asked for by number, is what the user gets.
        let named = on(
            BackendChoice::Ndarray,
            None,
            ModelKind::TextBag,
            Work::Train,
        );
        assert_eq!(named.unwrap().name, "ndarray");
        let numbered = on(
            BackendChoice::Auto,
            Some(7),
            ModelKind::TextBag,
            Work::Score,
        );
        assert!(!numbered.is_ok_and(|b| b.description.contains("n-gram table")));
    }

    #[test]
    fn wgpu_can_be_selected_more_than_once_in_a_process() {
        // The first setup of wgpu's runtime is the only one it allows; a second select
        // used to fail where the first had found the adapter.
        let first = select(BackendChoice::Wgpu).map(|b| b.description);
        let second = select(BackendChoice::Wgpu).map(|b| b.description);
        match (first, second) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
            (a, b) => panic!("the two selects differ: {a:?} then {b:?}"),
        }
    }
}
