using System;
using System.Globalization;
using System.Threading;

namespace QuantGen.Kernels;

/// <summary>
/// How many cores the int8 kernels use. Convolutions and linear layers split their GEMM into tasks
/// (blocks of output rows × blocks of output-channel panels; depthwise convolutions into rows of output
/// pixels; the large element-wise ops into row ranges) and run them on a persistent pool of worker
/// threads together with the calling thread. Every output element is computed by the same arithmetic
/// whichever thread runs its task, so results are bit-identical for any degree of parallelism.
/// </summary>
/// <remarks>
/// <para>
/// The default is <see cref="Environment.ProcessorCount"/>, or the value of the environment variable
/// <c>QUANTGEN_THREADS</c> (a positive integer), read when the degree is first needed (the first kernel call).
/// A value that is not a positive integer throws <see cref="QuantGenConfigurationException"/> there, and on every
/// later call until it is fixed, unless <see cref="MaxDegreeOfParallelism"/> was set. Set
/// <see cref="MaxDegreeOfParallelism"/> at any time to change it (1 runs everything on the calling thread).
/// </para>
/// <para>
/// The pool's threads are background threads started on first use and kept; a forward call allocates
/// nothing for them (no closures, tasks or delegates per call; their working memory is grown by the
/// calling thread before a call that needs more). Each thread first takes a contiguous share of a
/// call's tasks, so consecutive layers keep each thread on about the same part of the image (and its
/// data in that core's cache), then helps with what others have left. Between calls a worker spins
/// for about 200 µs (so the next layer starts without a wake-up delay), then sleeps until it is given
/// work; <see cref="Prewake"/> wakes it ahead of a forward. One parallel region runs at a time: when
/// two threads run models at once, the second runs its kernels on its own thread, with the same results.
/// </para>
/// <para>
/// Right after the pool starts, the operating system may keep a new worker on the caller's core for a
/// few tens of milliseconds before spreading them; measure speed after a warm-up.
/// </para>
/// </remarks>
public static class KernelThreads
{
    /// <summary>The environment variable read once for the default degree of parallelism.</summary>
    public const string EnvironmentVariable = "QUANTGEN_THREADS";

    // Both 0 until first needed: the environment is parsed lazily and only a good value is kept, so a bad
    // QUANTGEN_THREADS is reported where it is used, each time, instead of poisoning the type initializer
    // (a TypeInitializationException on every later use of the class, whatever the caller set).
    private static int s_defaultDegree;
    private static int s_maxDegree;

    /// <summary>
    /// The default: <c>QUANTGEN_THREADS</c> when it is set, else <see cref="Environment.ProcessorCount"/>
    /// (read on first use and kept).
    /// </summary>
    /// <exception cref="QuantGenConfigurationException"><c>QUANTGEN_THREADS</c> is set but is not a positive integer.</exception>
    public static int DefaultDegreeOfParallelism
    {
        get
        {
            int degree = Volatile.Read(ref s_defaultDegree);
            if (degree == 0)
            {
                degree = ParseDegree(Environment.GetEnvironmentVariable(EnvironmentVariable));
                Volatile.Write(ref s_defaultDegree, degree);
            }

            return degree;
        }
    }

    /// <summary>
    /// A GEMM or convolution gets one thread per this many multiply-adds, up to
    /// <see cref="MaxDegreeOfParallelism"/>: below it (about a microsecond of kernel time, what waking a
    /// helper costs) a call runs on the calling thread alone. FashionCnn's 0.1 M-multiply-add layers were
    /// slower on 2 threads than on 1 before this.
    /// </summary>
    public const long MinMultiplyAddsPerThread = 256 * 1024;

    /// <summary>Threads an int8 kernel call may use, the calling thread included (≥ 1).</summary>
    /// <exception cref="ArgumentOutOfRangeException">Set to less than 1.</exception>
    /// <exception cref="QuantGenConfigurationException">Read before any set while <c>QUANTGEN_THREADS</c> is not a positive integer.</exception>
    public static int MaxDegreeOfParallelism
    {
        get
        {
            int degree = Volatile.Read(ref s_maxDegree);
            if (degree == 0)
            {
                // First use without a set: start from the default, unless a set won the race meanwhile.
                Interlocked.CompareExchange(ref s_maxDegree, DefaultDegreeOfParallelism, 0);
                degree = Volatile.Read(ref s_maxDegree);
            }

            return degree;
        }

        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1);
            Volatile.Write(ref s_maxDegree, value);
        }
    }

    /// <summary>
    /// Bytes the pool's worker threads have allocated on the managed heap while running kernel tasks,
    /// since start-up (for tests and diagnostics; their scratch is grown by the calling thread, so this
    /// stays 0 unless a kernel allocates inside a task).
    /// </summary>
    public static long WorkerAllocatedBytes => WorkerPool.Shared.AllocatedBytes;

    /// <summary>
    /// Wakes sleeping pool workers so that they are spinning, ready, when the next kernel call starts:
    /// a model's quantize-input step calls it, hiding the wake-up latency behind its own work. Cheap
    /// when the workers are already awake; does nothing with one thread.
    /// </summary>
    public static void Prewake()
    {
        int degree = MaxDegreeOfParallelism;
        if (degree > 1)
        {
            WorkerPool.Shared.Prewake(degree - 1);
        }
    }

    /// <summary>Parses a <c>QUANTGEN_THREADS</c> value: a positive integer; null or blank → <see cref="Environment.ProcessorCount"/>.</summary>
    /// <exception cref="QuantGenConfigurationException">Not a positive integer (the message names the variable, the value and what it accepts).</exception>
    public static int ParseDegree(string? value)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            return Math.Max(1, Environment.ProcessorCount);
        }

        if (!int.TryParse(value.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int threads) || threads < 1)
        {
            throw new QuantGenConfigurationException(
                EnvironmentVariable, value, $"a positive integer, the number of threads the int8 kernels use (this machine has {Environment.ProcessorCount} cores)");
        }

        return threads;
    }
}

/// <summary>Work split into numbered, independent tasks (each writes its own outputs).</summary>
internal interface IParallelWork
{
    /// <summary>Runs task <paramref name="task"/> on worker <paramref name="worker"/> (0 = the calling thread); worker w's scratch is used by no other thread meanwhile.</summary>
    void Run(int task, int worker, KernelScratch scratch);

    /// <summary>
    /// Grows <paramref name="scratch"/> to what any task needs, before the region starts (on the calling
    /// thread), so that which thread happens to run which task never decides whether a call allocates.
    /// </summary>
    void Reserve(KernelScratch scratch);
}

/// <summary>
/// The persistent worker pool behind <see cref="KernelThreads"/>. A region's tasks are cut into one
/// contiguous range per participant (the caller is participant 0), so that consecutive layers give each
/// thread about the same part of the image and its data stays in that core's cache; a participant that
/// finishes its range (or never wakes) has its remaining tasks taken by the others. Each range's cursor
/// is one 64-bit word (region generation in the high half, next task in the low half) claimed by
/// compare-and-swap, so a worker that wakes late can only claim tasks of the region it read the work of.
/// </summary>
internal sealed class WorkerPool
{
    public static readonly WorkerPool Shared = new();

    // How long an idle worker spins before it sleeps: longer than the serial gaps between the parallel
    // layers of one forward (quantizing the input, the last pools), short enough not to steal a loaded
    // machine's CPU between forwards.
    private static readonly long SpinTicks = System.Diagnostics.Stopwatch.Frequency / 5000; // 200 µs

    private readonly object _growLock = new();
    private Worker[] _workers = [];
    private int _busy;
    // Cursor words, one per participant, a cache line (8 longs) apart; and each range's end.
    private const int CursorStride = 8;
    private long[] _cursors = new long[CursorStride];
    private int[] _rangeEnds = new int[1];
    private int _participants;
    private long _state;
    private IParallelWork? _work;
    private KernelScratch? _callerScratch;
    private int _taskCount;
    private int _completed;
    private int _helpers;
    private Exception? _failure;
    private long _allocatedBytes;

    public long AllocatedBytes => Interlocked.Read(ref _allocatedBytes);

    /// <summary>Runs tasks 0..<paramref name="taskCount"/>−1 on up to <paramref name="degree"/> threads, the caller included.</summary>
    public void Run(IParallelWork work, int taskCount, int degree, KernelScratch callerScratch)
    {
        int helpers = Math.Min(degree, taskCount) - 1;
        if (helpers <= 0 || Interlocked.CompareExchange(ref _busy, 1, 0) != 0)
        {
            // One thread wanted, or another region is running (a second model on another thread, or a
            // task that itself runs a kernel): the caller does every task itself.
            work.Reserve(callerScratch);
            for (int task = 0; task < taskCount; task++)
            {
                work.Run(task, 0, callerScratch);
            }

            return;
        }

        try
        {
            EnsureWorkers(helpers);

            // No worker is inside a task now (the last region completed), so their scratch can grow here.
            work.Reserve(callerScratch);
            for (int w = 0; w < helpers; w++)
            {
                work.Reserve(_workers[w].Scratch);
            }

            _work = work;
            _callerScratch = callerScratch;
            _taskCount = taskCount;
            _helpers = helpers;
            _failure = null;
            Volatile.Write(ref _completed, 0);
            long generation = (Volatile.Read(ref _state) >> 32) + 1;
            int participants = helpers + 1;
            _participants = participants;
            for (int p = 0; p < participants; p++)
            {
                int start = (int)((long)p * taskCount / participants);
                _rangeEnds[p] = (int)((long)(p + 1) * taskCount / participants);
                Volatile.Write(ref _cursors[p * CursorStride], (generation << 32) | (uint)start);
            }

            // The full fence of the exchange publishes the fields above before any worker can see the
            // new generation, and orders it before the sleeping flags are read (Worker.Wake).
            Interlocked.Exchange(ref _state, generation << 32);
            for (int w = 0; w < helpers; w++)
            {
                _workers[w].Wake();
            }

            int done = RunTasks(generation, 0);
            if (done > 0)
            {
                Interlocked.Add(ref _completed, done);
            }

            int spins = 0;
            while (Volatile.Read(ref _completed) < taskCount)
            {
                if (++spins < 4096)
                {
                    Thread.SpinWait(8);
                }
                else
                {
                    // A worker holding a task was descheduled: let it run.
                    Thread.Yield();
                }
            }

            // Seal the region: no claim can succeed in this generation any more, so a late worker that reads
            // the next region's fields before its generation is published cannot run a task with them.
            for (int p = 0; p < participants; p++)
            {
                Interlocked.Exchange(ref _cursors[p * CursorStride], (generation << 32) | int.MaxValue);
            }

            _work = null;
            _callerScratch = null;
            if (_failure is Exception failure)
            {
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
            }
        }
        finally
        {
            Volatile.Write(ref _busy, 0);
        }
    }

    /// <summary>Runs its own range of <paramref name="generation"/>'s tasks, then whatever is left of the others'; returns how many this thread ran.</summary>
    private int RunTasks(long generation, int worker)
    {
        IParallelWork? work = Volatile.Read(ref _work);
        KernelScratch? scratch = worker == 0 ? _callerScratch : _workers[worker - 1].Scratch;
        int participants = Volatile.Read(ref _participants);

        // The fields read above belong to this generation if a claim below succeeds: a claim needs a
        // cursor at (generation, t < end), and the caller writes the next region's fields only after
        // sealing every cursor of this one (low half int.MaxValue).
        if (work is null || scratch is null)
        {
            return 0;
        }

        int done = 0;
        for (int i = 0; i < participants; i++)
        {
            int range = (worker + i) % participants;
            done += RunRange(generation, range, worker, work, scratch);
        }

        return done;
    }

    private int RunRange(long generation, int range, int worker, IParallelWork work, KernelScratch scratch)
    {
        long[] cursors = _cursors;
        int[] rangeEnds = _rangeEnds;
        if (range >= rangeEnds.Length || (range * CursorStride) >= cursors.Length)
        {
            return 0; // a late worker's stale participant count, or arrays being grown
        }

        ref long cursor = ref cursors[range * CursorStride];
        int end = rangeEnds[range];
        int done = 0;
        while (true)
        {
            long state = Volatile.Read(ref cursor);
            if ((state >> 32) != generation)
            {
                return done;
            }

            int task = (int)(state & 0xFFFF_FFFF);
            if (task >= end)
            {
                return done;
            }

            if (Interlocked.CompareExchange(ref cursor, state + 1, state) != state)
            {
                continue;
            }

            try
            {
                work.Run(task, worker, scratch);
            }
            catch (Exception exception)
            {
                Interlocked.CompareExchange(ref _failure, exception, null);
            }

            done++;
        }
    }

    /// <summary>Sets the wake-up event of up to <paramref name="helpers"/> sleeping workers (no work is published).</summary>
    public void Prewake(int helpers)
    {
        Worker[] workers = _workers;
        for (int w = 0; w < workers.Length && w < helpers; w++)
        {
            workers[w].Wake();
        }
    }

    private void EnsureWorkers(int count)
    {
        if (_workers.Length >= count)
        {
            return;
        }

        lock (_growLock)
        {
            var grown = new Worker[count];
            Array.Copy(_workers, grown, _workers.Length);
            for (int w = _workers.Length; w < count; w++)
            {
                grown[w] = new Worker(this, w + 1);
            }

            // Cursors and range ends for every participant (the workers and the caller).
            var cursors = new long[(count + 1) * CursorStride];
            Array.Copy(_cursors, cursors, _cursors.Length);
            var rangeEnds = new int[count + 1];
            Array.Copy(_rangeEnds, rangeEnds, _rangeEnds.Length);
            _cursors = cursors;
            _rangeEnds = rangeEnds;
            _workers = grown;
            for (int w = 0; w < count; w++)
            {
                grown[w].Start();
            }
        }
    }

    private sealed class Worker
    {
        private readonly WorkerPool _pool;
        private readonly int _index;
        private readonly ManualResetEventSlim _wake = new(false, 0);
        private Thread? _thread;
        private int _sleeping;

        public Worker(WorkerPool pool, int index)
        {
            _pool = pool;
            _index = index;
        }

        public KernelScratch Scratch { get; } = new();

        public void Start()
        {
            if (_thread is not null)
            {
                return;
            }

            _thread = new Thread(Loop) { IsBackground = true, Name = $"QuantGen kernel worker {_index}" };
            _thread.Start();
        }

        /// <summary>Called after the new generation is published (with a full fence).</summary>
        public void Wake()
        {
            if (Volatile.Read(ref _sleeping) != 0)
            {
                _wake.Set();
            }
        }

        private void Loop()
        {
            long seen = Volatile.Read(ref _pool._state) >> 32;
            while (true)
            {
                long generation = WaitForGeneration(seen);
                seen = generation;
                if (_index > Volatile.Read(ref _pool._helpers))
                {
                    continue; // not asked to help with this region
                }

                long before = GC.GetAllocatedBytesForCurrentThread();
                int done = _pool.RunTasks(generation, _index);
                long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
                if (allocated != 0)
                {
                    Interlocked.Add(ref _pool._allocatedBytes, allocated);
                }

                if (done > 0)
                {
                    Interlocked.Add(ref _pool._completed, done);
                }
            }
        }

        private long WaitForGeneration(long seen)
        {
            while (true)
            {
                long spinUntil = System.Diagnostics.Stopwatch.GetTimestamp() + SpinTicks;
                for (int i = 0; ; i++)
                {
                    long generation = Volatile.Read(ref _pool._state) >> 32;
                    if (generation != seen)
                    {
                        return generation;
                    }

                    Thread.SpinWait(4);
                    if ((i & 63) == 63 && System.Diagnostics.Stopwatch.GetTimestamp() > spinUntil)
                    {
                        break;
                    }
                }

                // Dekker-style handshake with Wake: either this thread sees the new generation after
                // raising its flag, or the publisher sees the flag and sets the event.
                Interlocked.Exchange(ref _sleeping, 1);
                long current = Volatile.Read(ref _pool._state) >> 32;
                if (current == seen)
                {
                    _wake.Wait();
                }

                _wake.Reset();
                Volatile.Write(ref _sleeping, 0);
            }
        }
    }
}
