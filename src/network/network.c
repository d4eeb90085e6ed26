/*
 * network.c - sequential networks: planning, the training step, and the
 * optimizer with its learning-rate schedule.
 *
 * Memory, all allocated by nncl_network_plan and reused by every step:
 *   params, grads   every learnable parameter of every layer, back to back,
 *                   and their gradients in the same layout: one fill zeroes
 *                   all gradients and one kernel updates all parameters
 *   buffers         batch norm running statistics
 *   opt1, opt2      optimizer state in the parameters' layout
 *   acts, dacts     activations and their gradients: act[i] is the input of
 *                   layer i, act[n] the network's output; alias layers
 *                   (flatten, unflatten) get no memory of their own, and
 *                   neither does a relu fused into the layer before it
 *
 * Fusion: a layer with a forward_relu (conv2d, linear) followed by a relu
 * computes both in one pass, and the relu's forward is skipped: its output
 * is its input. Its backward runs in place (dx and dy share memory), from its
 * input, whose sign is the pre-activation's; or, when the layer after it has
 * a backward_relu (max pooling, linear), inside that layer's backward, and
 * the relu launches nothing at all. Results are bit for bit those of the
 * layers apart.
 *   targets         class labels (as floats) or regression targets
 *   metrics         [loss, correct]: read together, in one host wait
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers/layer.h"

struct nncl_network {
    nncl_context *ctx;
    nncl_layer **layers;
    size_t n_layers, cap_layers;
    nncl_loss *loss;
    nncl_loss_kind loss_kind;

    int planned;
    int64_t batch;
    int64_t out_size;               /* outputs per sample */
    nncl_tensor *act, *dact;        /* (n_layers + 1) planned activations and gradients, full batch */
    nncl_tensor *cur_act, *cur_dact; /* the same for the current batch (set by forward/backward) */
    int64_t *act_sample;            /* (n_layers + 1) elements per sample of each activation */
    unsigned char *fused;           /* (n_layers) fused[i]: layer i is a relu done by layer i - 1 */
    unsigned char *fused_back;      /* (n_layers) fused_back[i]: ... and its backward by layer i + 1 */

    nncl_tensor params, grads, buffers, opt1, opt2, act_arena, dact_arena;
    nncl_tensor targets, metrics, grad_norm;
    nncl_tensor loss_work;          /* 2 batch elements: the loss step's per-row losses and hits */
    nncl_tensor metrics_sum;        /* [sum of samples' losses, sum of correct] since the last reset */
    int64_t metrics_samples;
    float *label_staging;           /* batch floats: labels converted on the host, allocated once */
    float *input_staging;           /* batch samples: normalised inputs, allocated once */
    float input_mean, input_std;    /* x -> (x - mean) / std in set_batch */

    int64_t cur_n;                  /* samples in the current batch */
    int have_targets;               /* the current batch came with labels or targets */
    int forward_done;
    int dout_ready;                 /* the training forward left the loss's gradient in dact[n_layers] */

    int broken;                     /* a plan failed after parameters moved: unusable */
    int have_opt;
    nncl_optimizer_options opt;
    int64_t t;                      /* optimizer steps taken */
};

/* ---- construction -------------------------------------------------------------------------- */

nncl_optimizer_options nncl_optimizer_options_default(nncl_optimizer_kind kind)
{
    nncl_optimizer_options o = {
        .kind = kind,
        .lr = kind == NNCL_OPT_SGD ? 0.01f : 0.001f,
        .weight_decay = kind == NNCL_OPT_ADAMW ? 0.01f : 0.0f,
        .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
        .schedule = NNCL_SCHED_CONSTANT,
        .gamma = 0.1f,
        .warmup_start_factor = 1.0f / 3.0f,
    };
    return o;
}

nncl_status nncl_network_create(nncl_context *ctx, nncl_network **out)
{
    NNCL_CHECK_CTX(ctx);
    NNCL_CHECK_ARG(ctx, out);
    *out = calloc(1, sizeof **out);
    if (*out == NULL) return NNCL_ERROR(ctx, NNCL_ERR_OUT_OF_MEMORY, "network: out of host memory");
    (*out)->ctx = ctx;
    (*out)->input_std = 1.0f;
    return NNCL_OK;
}

static void unplan(nncl_network *net);

nncl_status nncl_network_destroy(nncl_network *net)
{
    if (net == NULL) return NNCL_OK;
    for (size_t i = 0; i < net->n_layers; i++) nncl__layer_free(net->layers[i]);
    free(net->layers);
    nncl__loss_free(net->loss);
    unplan(net);
    free(net);
    return NNCL_OK;
}

#define CHECK_NET(net)                                                                             \
    do {                                                                                           \
        if ((net) == NULL) return NNCL_ERROR(NULL, NNCL_ERR_INVALID_ARG, "%s: network is NULL", __func__); \
    } while (0)

/* nncl_network_add and nncl_network_set_loss own their argument from the call on, even on failure, a NULL
   network's included: past the checks that leave it to a network that already keeps it, they free it. */
nncl_status nncl_network_add(nncl_network *net, nncl_layer *layer)
{
    nncl_context *ctx = net ? net->ctx : NULL;
    if (layer == NULL) return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "%s: layer is NULL", __func__);
    if (layer->owned) /* its network keeps it: not destroyed here */
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "%s: %s already belongs to a network", __func__, layer->desc);
    nncl_status st = NNCL_OK;
    if (net == NULL) st = NNCL_ERROR(NULL, NNCL_ERR_INVALID_ARG, "%s: network is NULL", __func__);
    else if (net->planned)
        st = NNCL_ERROR(net->ctx, NNCL_ERR_INVALID_ARG, "%s: the network is already planned", __func__);
    else if (layer->ctx != net->ctx) st = NNCL_ERROR(net->ctx, NNCL_ERR_INVALID_ARG, "%s: layer of another context", __func__);
    else if (layer->ops->forward == NULL)
        st = NNCL_ERROR(net->ctx, NNCL_ERR_INVALID_ARG, "%s: %s takes two inputs and has no place in a sequential network",
                        __func__, layer->desc);
    if (st == NNCL_OK) {
        nncl_layer **layers = nncl__grow(net->layers, net->n_layers, &net->cap_layers, sizeof *layers, 8);
        if (layers == NULL) st = NNCL_ERROR(net->ctx, NNCL_ERR_OUT_OF_MEMORY, "network: out of host memory");
        else net->layers = layers;
    }
    if (st != NNCL_OK) {
        nncl__layer_free(layer);
        return st;
    }
    layer->owned = 1;
    net->layers[net->n_layers++] = layer;
    return NNCL_OK;
}

nncl_status nncl_network_set_loss(nncl_network *net, nncl_loss *loss)
{
    nncl_context *ctx = net ? net->ctx : NULL;
    if (loss == NULL) return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "%s: loss is NULL", __func__);
    NNCL_TRY(nncl__loss_adopt(loss)); /* a loss some network keeps is not destroyed here */
    nncl_status st = NNCL_OK;
    if (net == NULL) st = NNCL_ERROR(NULL, NNCL_ERR_INVALID_ARG, "%s: network is NULL", __func__);
    else if (net->planned)
        st = NNCL_ERROR(net->ctx, NNCL_ERR_INVALID_ARG, "%s: the network is already planned", __func__);
    else if (nncl__loss_context(loss) != net->ctx)
        st = NNCL_ERROR(net->ctx, NNCL_ERR_INVALID_ARG, "%s: loss of another context", __func__);
    if (st != NNCL_OK) {
        nncl__loss_free(loss);
        return st;
    }
    nncl__loss_free(net->loss);
    net->loss = loss;
    net->loss_kind = nncl__loss_kind(loss);
    return NNCL_OK;
}

/* ---- planning ------------------------------------------------------------------------------ */

static int is_class_loss(nncl_loss_kind k)
{
    return k == NNCL_LOSS_CROSS_ENTROPY || k == NNCL_LOSS_NLL;
}

/* A view of `elems` elements of `arena` at `*offset` with the given shape; advances *offset. */
static nncl_status carve(nncl_context *ctx, const nncl_tensor *arena, int64_t *offset, int ndim, const int64_t *shape,
                         nncl_tensor *out)
{
    NNCL_TRY(nncl_tensor_view(ctx, arena, (size_t)*offset, ndim, shape, out));
    *offset += nncl_tensor_numel(out);
    return NNCL_OK;
}

/* Creates a 1-D tensor of n elements (at least 1) filled with zeros. */
static nncl_status zeros(nncl_context *ctx, int64_t n, nncl_tensor *out)
{
    if (n < 1) n = 1;
    NNCL_TRY(nncl__tensor_create_owned(ctx, 1, &n, out));
    return nncl_tensor_fill(ctx, out, 0.0f);
}

/* Releases what a plan allocated (after a failed plan: so that the network can be planned again). */
static void unplan(nncl_network *net)
{
    nncl_tensor *owned[] = {&net->params, &net->grads, &net->buffers, &net->opt1, &net->opt2, &net->act_arena,
                            &net->dact_arena, &net->targets, &net->metrics, &net->grad_norm, &net->metrics_sum,
                            &net->loss_work};
    for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++) nncl__tensor_release(net->ctx, owned[i]);
    void **arrays[] = {(void **)&net->act,        (void **)&net->dact,          (void **)&net->cur_act,
                       (void **)&net->cur_dact,   (void **)&net->act_sample,    (void **)&net->fused,
                       (void **)&net->fused_back,
                       (void **)&net->label_staging, (void **)&net->input_staging};
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) {
        free(*arrays[i]);
        *arrays[i] = NULL;
    }
}

static nncl_status plan(nncl_network *net, int ndim, const int64_t *sample_shape, int64_t batch, int *moved);

nncl_status nncl_network_plan(nncl_network *net, int ndim, const int64_t *sample_shape, int64_t batch)
{
    CHECK_NET(net);
    if (net->broken)
        return NNCL_ERROR(net->ctx, NNCL_ERR_INVALID_ARG,
                          "%s: an earlier plan failed after moving parameters; rebuild the network", __func__);
    /* Refused here, not in plan(): a failed plan() is undone, and this plan must survive the refusal. */
    if (net->planned) return NNCL_ERROR(net->ctx, NNCL_ERR_INVALID_ARG, "%s: the network is already planned", __func__);
    int moved = 0;
    nncl_status st = plan(net, ndim, sample_shape, batch, &moved);
    if (st != NNCL_OK) {
        if (moved) net->broken = 1; /* layers already point into the arenas: keep them, refuse to run */
        else unplan(net);
    }
    return st;
}

/* Layer i's output lives in its input's memory: an alias layer, or a relu fused into layer i - 1. */
static int shares_input(const nncl_network *net, size_t i)
{
    return net->layers[i]->ops->is_alias || net->fused[i];
}

static nncl_status prepare_layers(nncl_network *net);

static nncl_status plan(nncl_network *net, int ndim, const int64_t *sample_shape, int64_t batch, int *moved)
{
    nncl_context *ctx = net->ctx;
    if (net->n_layers == 0) return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "%s: the network has no layers", __func__);
    if (ndim < 1 || ndim >= NNCL_MAX_DIMS || sample_shape == NULL || batch < 1 || batch > (1 << 24))
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "%s: bad sample rank %d or batch %lld", __func__, ndim,
                          (long long)batch);
    size_t n = net->n_layers;
    net->act = calloc(n + 1, sizeof *net->act);
    net->dact = calloc(n + 1, sizeof *net->dact);
    net->cur_act = calloc(n + 1, sizeof *net->cur_act);
    net->cur_dact = calloc(n + 1, sizeof *net->cur_dact);
    net->act_sample = calloc(n + 1, sizeof *net->act_sample);
    net->fused = calloc(n, sizeof *net->fused);
    net->fused_back = calloc(n, sizeof *net->fused_back);
    net->label_staging = calloc((size_t)batch, sizeof *net->label_staging);
    if (!net->act || !net->dact || !net->cur_act || !net->cur_dact || !net->act_sample || !net->fused ||
        !net->fused_back || !net->label_staging)
        return NNCL_ERROR(ctx, NNCL_ERR_OUT_OF_MEMORY, "network: out of host memory");
    for (size_t i = 1; i < n; i++) {
        net->fused[i] = net->layers[i - 1]->ops->forward_relu != NULL && !net->fused[i - 1] &&
                        nncl__layer_is_relu(net->layers[i]);
        net->fused_back[i] = net->fused[i] && i + 1 < n && net->layers[i + 1]->ops->backward_relu != NULL;
    }

    /* Shapes first (kept in the act descriptors until the arenas exist):
       act[0] is (batch, sample...), act[i + 1] the output of layer i. */
    nncl_tensor *a = net->act;
    a[0].ndim = ndim + 1;
    a[0].shape[0] = batch;
    for (int d = 0; d < ndim; d++) a[0].shape[d + 1] = sample_shape[d];
    char s[160];
    if (nncl__shape_elements(a[0].ndim, a[0].shape) < 0)
        return NNCL_ERROR(ctx, NNCL_ERR_SHAPE, "%s: input %s has a size < 1 or more than 2^40 elements", __func__,
                          nncl_shape_format(a[0].ndim, a[0].shape, s, sizeof s));
    int64_t act_total = 0, param_total = 0, buffer_total = 0;
    for (size_t i = 0; i < n; i++) {
        nncl_layer *l = net->layers[i];
        nncl_status st = nncl_layer_output_shape(l, a[i].ndim, a[i].shape, &a[i + 1].ndim, a[i + 1].shape);
        if (st != NNCL_OK) {
            nncl__error_append(ctx, " (layer %zu)", i);
            return st;
        }
        if (a[i + 1].ndim < 1 || a[i + 1].shape[0] != batch)
            return NNCL_ERROR(ctx, NNCL_ERR_SHAPE, "%s: layer %zu (%s) must keep the batch dimension first", __func__, i,
                              l->desc);
        if (nncl__shape_elements(a[i + 1].ndim, a[i + 1].shape) < 0) /* before the next layer multiplies its sizes */
            return NNCL_ERROR(ctx, NNCL_ERR_SHAPE, "%s: layer %zu (%s) gives %s: more than 2^40 elements", __func__, i,
                              l->desc, nncl_shape_format(a[i + 1].ndim, a[i + 1].shape, s, sizeof s));
        for (size_t p = 0; p < l->n_total; p++) {
            int64_t e = nncl_tensor_numel(&l->params[p].value);
            if (p < l->n_params) param_total += e;
            else buffer_total += e;
        }
    }
    for (size_t i = 0; i <= n; i++) {
        int64_t e = nncl_tensor_numel(&a[i]);
        net->act_sample[i] = e / batch;
        if (i == 0 || !shares_input(net, i - 1)) act_total += e;
    }
    net->out_size = net->act_sample[n];
    /* Not PyTorch's (N, C, d...) with targets (N, d...): never silently N rows of C d... classes. */
    if (net->loss && is_class_loss(net->loss_kind) && a[n].ndim != 2)
        return NNCL_ERROR(ctx, NNCL_ERR_SHAPE, "%s: %s needs the network's output to be (N, C), not %s: add a flatten",
                          __func__, nncl__loss_name(net->loss_kind),
                          nncl_shape_format(a[n].ndim, a[n].shape, s, sizeof s));
    net->batch = batch;
    net->input_staging = malloc(sizeof(float) * (size_t)(batch * net->act_sample[0]));
    if (net->input_staging == NULL) return NNCL_ERROR(ctx, NNCL_ERR_OUT_OF_MEMORY, "network: out of host memory");

    /* The arenas. */
    NNCL_TRY(zeros(ctx, param_total, &net->params));
    NNCL_TRY(zeros(ctx, param_total, &net->grads));
    NNCL_TRY(zeros(ctx, param_total, &net->opt1));
    NNCL_TRY(zeros(ctx, param_total, &net->opt2));
    NNCL_TRY(zeros(ctx, buffer_total, &net->buffers));
    NNCL_TRY(zeros(ctx, act_total, &net->act_arena));
    NNCL_TRY(zeros(ctx, act_total, &net->dact_arena));
    NNCL_TRY(zeros(ctx, batch * (net->loss && !is_class_loss(net->loss_kind) ? net->out_size : 1), &net->targets));
    NNCL_TRY(zeros(ctx, 2, &net->metrics));
    NNCL_TRY(zeros(ctx, 1, &net->grad_norm));
    NNCL_TRY(zeros(ctx, 2, &net->metrics_sum));
    NNCL_TRY(zeros(ctx, 2 * batch, &net->loss_work));

    /* Class labels travel as floats: exact below 2^24. */
    if (net->loss && is_class_loss(net->loss_kind) && net->out_size > (1 << 24))
        return NNCL_ERROR(ctx, NNCL_ERR_SHAPE, "%s: %lld classes; class losses support at most 2^24", __func__,
                          (long long)net->out_size);
    /* Parameters move into the arenas, in layer order: state_dict order. */
    *moved = 1;
    int64_t po = 0, bo = 0;
    for (size_t i = 0; i < n; i++) {
        nncl_layer *l = net->layers[i];
        for (size_t p = 0; p < l->n_total; p++) {
            nncl_tensor *v = &l->params[p].value;
            nncl_tensor value, grad = {0};
            if (p < l->n_params) {
                int64_t at = po;
                NNCL_TRY(carve(ctx, &net->params, &po, v->ndim, v->shape, &value));
                NNCL_TRY(carve(ctx, &net->grads, &at, v->ndim, v->shape, &grad));
            } else {
                NNCL_TRY(carve(ctx, &net->buffers, &bo, v->ndim, v->shape, &value));
            }
            NNCL_TRY(nncl__layer_rebind_param(l, p, &value, &grad));
        }
    }
    /* Activations: alias layers reuse their input's memory. */
    int64_t ao = 0;
    for (size_t i = 0; i <= n; i++) {
        const nncl_tensor shape = net->act[i]; /* only its ndim and shape are set yet */
        if (i > 0 && shares_input(net, i - 1)) {
            NNCL_TRY(nncl_tensor_reshape(ctx, &net->act[i - 1], shape.ndim, shape.shape, &net->act[i]));
            NNCL_TRY(nncl_tensor_reshape(ctx, &net->dact[i - 1], shape.ndim, shape.shape, &net->dact[i]));
            continue;
        }
        int64_t at = ao;
        NNCL_TRY(carve(ctx, &net->act_arena, &ao, shape.ndim, shape.shape, &net->act[i]));
        NNCL_TRY(carve(ctx, &net->dact_arena, &at, shape.ndim, shape.shape, &net->dact[i]));
    }
    NNCL_TRY(prepare_layers(net));
    net->planned = 1;
    return NNCL_OK;
}

/* The first layer whose input gradient is computed: the first that is not an alias (see backward). */
static size_t first_with_dx(const nncl_network *net)
{
    size_t first = 0;
    while (first < net->n_layers && net->layers[first]->ops->is_alias) first++;
    return first;
}

/*
 * The backend's choices for the shapes of every layer (GEMM implementations,
 * convolution paths), made while planning rather than in the first step: by
 * measuring, on devices where the backend measures, on the network's own
 * arenas. Measuring may leave values in the activations, which every step
 * overwrites; the gradients it adds to stay zero, since every dy is still
 * the zeroed gradient arena.
 */
static nncl_status prepare_layers(nncl_network *net)
{
    const size_t first = first_with_dx(net);
    for (size_t i = first; i < net->n_layers; i++) {
        nncl_layer *l = net->layers[i];
        if (l->ops->prepare == NULL) continue;
        nncl_tensor *dx = i == first && !l->ops->needs_dx ? NULL : &net->dact[i];
        NNCL_TRY(l->ops->prepare(l, &net->act[i], &net->act[i + 1], &net->dact[i + 1], dx));
    }
    return NNCL_OK;
}

nncl_status nncl_network_init(nncl_network *net, uint64_t seed)
{
    CHECK_NET(net);
    for (size_t i = 0; i < net->n_layers; i++) NNCL_TRY(nncl_layer_reset_parameters(net->layers[i], seed, (uint32_t)i));
    return NNCL_OK;
}

/* ---- the optimizer --------------------------------------------------------------------------- */

nncl_status nncl_network_set_optimizer(nncl_network *net, const nncl_optimizer_options *opt)
{
    CHECK_NET(net);
    nncl_context *ctx = net->ctx;
    NNCL_CHECK_ARG(ctx, opt);
    if (!net->planned) return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "%s: plan the network first", __func__);
    const nncl_optimizer_options *o = opt;
    if ((int)o->kind < NNCL_OPT_SGD || (int)o->kind > NNCL_OPT_ADAMW)
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "optimizer: unknown kind %d", (int)o->kind);
    const struct { const char *name; float value; } values[] = {
        {"lr", o->lr},       {"momentum", o->momentum},   {"dampening", o->dampening}, {"weight_decay", o->weight_decay},
        {"beta1", o->beta1}, {"beta2", o->beta2},         {"eps", o->eps},             {"clip_norm", o->clip_norm},
        {"gamma", o->gamma}, {"eta_min", o->eta_min},     {"warmup_start_factor", o->warmup_start_factor},
    };
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++)
        if (!isfinite(values[i].value) || values[i].value < 0.0f) /* NaN fails isfinite */
            return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "optimizer: %s = %g must be finite and >= 0", values[i].name,
                              (double)values[i].value);
    if (o->dampening > 1.0f)
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "optimizer: dampening %g must be <= 1", (double)o->dampening);
    if (o->nesterov && (o->momentum <= 0.0f || o->dampening != 0.0f))
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "optimizer: nesterov needs momentum > 0 and dampening 0");
    if (o->kind != NNCL_OPT_SGD && !(o->beta1 >= 0.0f && o->beta1 < 1.0f && o->beta2 >= 0.0f && o->beta2 < 1.0f &&
                                      o->eps > 0.0f))
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "optimizer: betas (%g, %g) must be in [0, 1) and eps %g > 0",
                          (double)o->beta1, (double)o->beta2, (double)o->eps);
    if ((o->schedule == NNCL_SCHED_STEP && o->step_size < 1) || (o->schedule == NNCL_SCHED_COSINE && o->t_max < 1) ||
        (int)o->schedule < 0 || (int)o->schedule > NNCL_SCHED_COSINE || o->warmup_steps < 0 ||
        (o->warmup_steps > 0 && !(o->warmup_start_factor > 0.0f && o->warmup_start_factor <= 1.0f)))
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG,
                          "schedule: kind %d with step_size %lld, t_max %lld, warm-up %lld steps from factor %g is "
                          "invalid",
                          (int)o->schedule, (long long)o->step_size, (long long)o->t_max, (long long)o->warmup_steps,
                          (double)o->warmup_start_factor);
    NNCL_TRY(nncl_tensor_fill(ctx, &net->opt1, 0.0f));
    NNCL_TRY(nncl_tensor_fill(ctx, &net->opt2, 0.0f));
    net->opt = *o;
    net->have_opt = 1;
    net->t = 0;
    return NNCL_OK;
}

/* The learning rate of step t (0-based), from the schedule and the warm-up. */
static double schedule_lr(const nncl_optimizer_options *o, int64_t t)
{
    double lr = o->lr;
    if (o->schedule == NNCL_SCHED_STEP) {
        lr *= pow((double)o->gamma, (double)(t / o->step_size));
    } else if (o->schedule == NNCL_SCHED_COSINE) {
        const double pi = 3.14159265358979323846;
        double tt = (double)(t < o->t_max ? t : o->t_max);
        lr = o->eta_min + (o->lr - o->eta_min) * (1.0 + cos(pi * tt / (double)o->t_max)) / 2.0;
    }
    if (t < o->warmup_steps) {
        double f = o->warmup_start_factor + (1.0 - o->warmup_start_factor) * (double)t / (double)o->warmup_steps;
        lr *= f;
    }
    return lr;
}

nncl_status nncl_network_lr(const nncl_network *net, float *lr)
{
    CHECK_NET(net);
    NNCL_CHECK_ARG(net->ctx, lr);
    if (!net->have_opt) return NNCL_ERROR(net->ctx, NNCL_ERR_INVALID_ARG, "%s: no optimizer", __func__);
    *lr = (float)schedule_lr(&net->opt, net->t);
    return NNCL_OK;
}

nncl_status nncl_network_step(nncl_network *net)
{
    CHECK_NET(net);
    nncl_context *ctx = net->ctx;
    if (!net->have_opt) return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "%s: no optimizer set", __func__);
    if (net->t >= NNCL_MAX_STEPS)
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "%s: the network has taken 2^53 steps, the most it counts",
                          __func__);
    const nncl_optimizer_options *o = &net->opt;
    double lr = schedule_lr(o, net->t);
    double t1 = (double)(net->t + 1);
    nncl_optim_args a = {
        .kind = o->kind, .lr = (float)lr, .momentum = o->momentum, .dampening = o->dampening,
        .weight_decay = o->weight_decay, .nesterov = o->nesterov, .first_step = net->t == 0,
        .beta1 = o->beta1, .beta2 = o->beta2, .eps = o->eps,
        .step_size = (float)(lr / (1.0 - pow((double)o->beta1, t1))),
        .bc2_sqrt = (float)sqrt(1.0 - pow((double)o->beta2, t1)),
        .max_norm = o->clip_norm, .norm = &net->grad_norm,
    };
    nncl__profile_scope(ctx, "optimizer update");
    if (o->clip_norm > 0.0f) NNCL_TRY(ctx->ops->norm2(ctx, &net->grad_norm, &net->grads));
    NNCL_TRY(ctx->ops->optimizer_step(ctx, &net->params, &net->grads, &net->opt1, &net->opt2, &a));
    net->t++;
    /* The step's work goes to the device now, while the host prepares the next batch: some drivers would
       otherwise hold it until the next wait. */
    return ctx->ops->flush(ctx);
}

nncl_status nncl_network_get_context(const nncl_network *net, nncl_context **ctx)
{
    CHECK_NET(net);
    NNCL_CHECK_ARG(net->ctx, ctx);
    *ctx = net->ctx;
    return NNCL_OK;
}

nncl_status nncl_network_get_optimizer(const nncl_network *net, nncl_optimizer_options *opt)
{
    CHECK_NET(net);
    NNCL_CHECK_ARG(net->ctx, opt);
    if (!net->have_opt) return NNCL_ERROR(net->ctx, NNCL_ERR_INVALID_ARG, "%s: no optimizer set", __func__);
    *opt = net->opt;
    return NNCL_OK;
}

nncl_status nncl_network_get_step(const nncl_network *net, int64_t *t)
{
    CHECK_NET(net);
    NNCL_CHECK_ARG(net->ctx, t);
    *t = net->t;
    return NNCL_OK;
}

nncl_status nncl_network_set_step(nncl_network *net, int64_t t)
{
    CHECK_NET(net);
    if (t < 0 || t > NNCL_MAX_STEPS)
        return NNCL_ERROR(net->ctx, NNCL_ERR_INVALID_ARG, "%s: step %lld is not in 0..2^53", __func__, (long long)t);
    net->t = t;
    return NNCL_OK;
}

/* ---- the training step --------------------------------------------------------------------------- */

/* The first n samples of a planned activation. */
static nncl_tensor first_rows(const nncl_tensor *t, int64_t n)
{
    nncl_tensor v = *t;
    v.shape[0] = n;
    return v;
}

nncl_status nncl_network_set_batch(nncl_network *net, const float *inputs, const int64_t *labels,
                                   const float *targets, int64_t n)
{
    CHECK_NET(net);
    nncl_context *ctx = net->ctx;
    NNCL_CHECK_ARG(ctx, inputs);
    if (!net->planned) return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "%s: plan the network first", __func__);
    if (n < 1 || n > net->batch)
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "%s: %lld samples, the network is planned for 1..%lld", __func__,
                          (long long)n, (long long)net->batch);
    int classes = net->loss && is_class_loss(net->loss_kind);
    if ((labels && !classes) || (targets && (net->loss == NULL || classes)))
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "%s: %s do not fit the network's loss", __func__,
                          labels ? "class labels" : "targets");
    for (int64_t i = 0; labels != NULL && i < n; i++) /* checked before anything changes */
        if (labels[i] < 0 || labels[i] >= net->out_size)
            return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "%s: label %lld is %lld, outside [0, %lld)", __func__,
                              (long long)i, (long long)labels[i], (long long)net->out_size);
    nncl__profile_scope(ctx, "upload");
    nncl_tensor x = first_rows(&net->act[0], n);
    const int64_t count = n * net->act_sample[0];
    const float *src = inputs;
    if (net->input_mean != 0.0f || net->input_std != 1.0f) {
        const float mean = net->input_mean, inv = 1.0f / net->input_std;
        for (int64_t i = 0; i < count; i++) net->input_staging[i] = (inputs[i] - mean) * inv;
        src = net->input_staging;
    }
    net->have_targets = 0;
    net->forward_done = 0;
    net->cur_n = 0;
    NNCL_TRY(nncl_tensor_upload(ctx, &x, src, (size_t)count));
    if (labels) {
        for (int64_t i = 0; i < n; i++) net->label_staging[i] = (float)labels[i];
        nncl_tensor t = {.buf = net->targets.buf, .offset = net->targets.offset, .ndim = 1, .shape = {n}};
        NNCL_TRY(nncl_tensor_upload(ctx, &t, net->label_staging, (size_t)n));
        net->have_targets = 1;
    } else if (targets) {
        nncl_tensor t = {.buf = net->targets.buf, .offset = net->targets.offset, .ndim = 1, .shape = {n * net->out_size}};
        NNCL_TRY(nncl_tensor_upload(ctx, &t, targets, (size_t)(n * net->out_size)));
        net->have_targets = 1;
    }
    net->cur_n = n;
    return NNCL_OK;
}

nncl_status nncl_network_set_normalization(nncl_network *net, float mean, float std)
{
    CHECK_NET(net);
    if (!isfinite(mean) || !(std > 0.0f) || !isfinite(std))
        return NNCL_ERROR(net->ctx, NNCL_ERR_INVALID_ARG, "%s: mean %g must be finite and std %g > 0", __func__,
                          (double)mean, (double)std);
    net->input_mean = mean;
    net->input_std = std;
    return NNCL_OK;
}

nncl_status nncl_network_get_normalization(const nncl_network *net, float *mean, float *std)
{
    CHECK_NET(net);
    if (mean) *mean = net->input_mean;
    if (std) *std = net->input_std;
    return NNCL_OK;
}

/* The loss's view of the output (2-D for the class losses), of the targets, and of the output's gradient. */
static void loss_views(nncl_network *net, nncl_tensor *out, nncl_tensor *target, nncl_tensor *dout)
{
    const int64_t n = net->cur_n;
    const size_t last = net->n_layers;
    *out = net->cur_act[last];
    out->ndim = 2;
    out->shape[0] = n;
    out->shape[1] = net->out_size;
    *target = net->targets;
    target->ndim = 1;
    target->shape[0] = is_class_loss(net->loss_kind) ? n : n * net->out_size;
    net->cur_dact[last] = first_rows(&net->dact[last], n);
    *dout = net->cur_dact[last];
    dout->ndim = 2;
    dout->shape[0] = n;
    dout->shape[1] = net->out_size;
}

nncl_status nncl_network_forward(nncl_network *net, nncl_mode mode)
{
    CHECK_NET(net);
    nncl_context *ctx = net->ctx;
    if (net->cur_n == 0) return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "%s: no batch set", __func__);
    /* Until this forward has finished, neither its output nor a loss gradient from an earlier one is there. */
    net->forward_done = 0;
    net->dout_ready = 0;
    net->cur_act[0] = first_rows(&net->act[0], net->cur_n);
    for (size_t i = 0; i < net->n_layers; i++) {
        net->cur_act[i + 1] = first_rows(&net->act[i + 1], net->cur_n);
        if (net->fused[i]) continue; /* done by layer i - 1, in the same memory */
        nncl__profile_scope(ctx, "%zu.%s forward", i, net->layers[i]->ops->kind);
        if (i + 1 < net->n_layers && net->fused[i + 1])
            NNCL_TRY(nncl__layer_forward_relu(net->layers[i], mode, &net->cur_act[i], &net->cur_act[i + 1]));
        else
            NNCL_TRY(nncl_layer_forward(net->layers[i], mode, &net->cur_act[i], &net->cur_act[i + 1]));
    }
    nncl__profile_scope(ctx, "loss forward");
    if (net->loss && net->have_targets) {
        /* The loss, the metrics and, when training, the loss's gradient for the backward that follows: the
           same values as nncl_loss_forward and nncl_loss_backward, in two launches. */
        nncl_tensor out, target, dout, work = first_rows(&net->loss_work, 2 * net->cur_n);
        loss_views(net, &out, &target, &dout);
        NNCL_TRY(ctx->ops->loss_step(ctx, net->loss_kind, &net->metrics, &net->metrics_sum,
                                     mode == NNCL_TRAIN ? &dout : NULL, &work, &out, &target, net->cur_n,
                                     net->out_size, nncl__loss_smoothing(net->loss)));
        net->dout_ready = mode == NNCL_TRAIN;
        net->metrics_samples += net->cur_n;
    }
    net->forward_done = 1;
    return NNCL_OK;
}

nncl_status nncl_network_backward(nncl_network *net)
{
    CHECK_NET(net);
    nncl_context *ctx = net->ctx;
    if (!net->forward_done || !net->have_targets || net->loss == NULL)
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "%s: needs a forward of a batch with labels or targets", __func__);
    size_t n = net->n_layers;
    nncl_tensor out, target, dout;
    loss_views(net, &out, &target, &dout);
    /* The layers' backward may overwrite dout in place: a later backward computes it again. */
    const int dout_ready = net->dout_ready;
    net->dout_ready = 0;
    nncl__profile_scope(ctx, "loss backward");
    if (!dout_ready) NNCL_TRY(nncl_loss_backward(net->loss, &out, &target, &dout));
    /* The network's input needs no gradient: neither does the input of the first layer that is not an alias
       (flatten before the first linear layer, say), nor the aliases before it, which are skipped. */
    const size_t first = first_with_dx(net);
    for (size_t i = n; i-- > 0;) {
        nncl_layer *l = net->layers[i];
        if (i < first) break;
        nncl__profile_scope(ctx, "%zu.%s backward", i, l->ops->kind);
        net->cur_dact[i] = first_rows(&net->dact[i], net->cur_n);
        nncl_tensor *dx = i == first && !l->ops->needs_dx ? NULL : &net->cur_dact[i];
        if (net->fused_back[i]) continue; /* done by layer i + 1, in the same memory */
        if (i > 0 && net->fused_back[i - 1])
            NNCL_TRY(nncl__layer_backward_relu(l, &net->cur_act[i], &net->cur_act[i + 1], &net->cur_dact[i + 1], dx));
        else
            NNCL_TRY(nncl_layer_backward(l, &net->cur_act[i], &net->cur_act[i + 1], &net->cur_dact[i + 1], dx));
    }
    return NNCL_OK;
}

nncl_status nncl_network_zero_grad(nncl_network *net)
{
    CHECK_NET(net);
    if (!net->planned) return NNCL_ERROR(net->ctx, NNCL_ERR_INVALID_ARG, "%s: plan the network first", __func__);
    nncl__profile_scope(net->ctx, "zero_grad");
    return nncl_tensor_fill(net->ctx, &net->grads, 0.0f);
}

nncl_status nncl_network_train_step(nncl_network *net)
{
    NNCL_TRY(nncl_network_zero_grad(net));
    NNCL_TRY(nncl_network_forward(net, NNCL_TRAIN));
    NNCL_TRY(nncl_network_backward(net));
    return nncl_network_step(net);
}

nncl_status nncl_network_metrics(nncl_network *net, float *loss, int64_t *correct)
{
    CHECK_NET(net);
    if (!net->forward_done || !net->have_targets)
        return NNCL_ERROR(net->ctx, NNCL_ERR_INVALID_ARG, "%s: needs a forward of a batch with labels or targets",
                          __func__);
    float m[2];
    NNCL_TRY(nncl_tensor_read(net->ctx, &net->metrics, m, 2));
    if (loss) *loss = m[0];
    if (correct) *correct = (int64_t)m[1];
    return NNCL_OK;
}

nncl_status nncl_network_metrics_sum(nncl_network *net, float *mean_loss, int64_t *correct, int64_t *samples)
{
    CHECK_NET(net);
    float m[2] = {0.0f, 0.0f};
    if (net->metrics_samples > 0) NNCL_TRY(nncl_tensor_read(net->ctx, &net->metrics_sum, m, 2));
    /* Each batch counts by its samples: a smaller last batch weighs less, as in a mean over all samples. */
    if (mean_loss) *mean_loss = net->metrics_samples ? m[0] / (float)net->metrics_samples : 0.0f;
    if (correct) *correct = (int64_t)m[1];
    if (samples) *samples = net->metrics_samples;
    return NNCL_OK;
}

nncl_status nncl_network_reset_metrics_sum(nncl_network *net)
{
    CHECK_NET(net);
    if (!net->planned) return NNCL_ERROR(net->ctx, NNCL_ERR_INVALID_ARG, "%s: plan the network first", __func__);
    net->metrics_samples = 0;
    return nncl_tensor_fill(net->ctx, &net->metrics_sum, 0.0f);
}

nncl_status nncl_network_output(nncl_network *net, float *out, size_t count)
{
    CHECK_NET(net);
    if (!net->forward_done) return NNCL_ERROR(net->ctx, NNCL_ERR_INVALID_ARG, "%s: no forward yet", __func__);
    return nncl_tensor_read(net->ctx, &net->cur_act[net->n_layers], out, count);
}

/* ---- queries ------------------------------------------------------------------------------------ */

nncl_status nncl_network_output_size(const nncl_network *net, int64_t *size)
{
    CHECK_NET(net);
    NNCL_CHECK_ARG(net->ctx, size);
    if (!net->planned) return NNCL_ERROR(net->ctx, NNCL_ERR_INVALID_ARG, "%s: plan the network first", __func__);
    *size = net->out_size;
    return NNCL_OK;
}

nncl_status nncl_network_layer_count(const nncl_network *net, size_t *count)
{
    CHECK_NET(net);
    NNCL_CHECK_ARG(net->ctx, count);
    *count = net->n_layers;
    return NNCL_OK;
}

nncl_status nncl_network_layer(const nncl_network *net, size_t i, nncl_layer **layer)
{
    CHECK_NET(net);
    NNCL_CHECK_ARG(net->ctx, layer);
    if (i >= net->n_layers)
        return NNCL_ERROR(net->ctx, NNCL_ERR_INVALID_ARG, "%s: layer %zu of %zu", __func__, i, net->n_layers);
    *layer = net->layers[i];
    return NNCL_OK;
}

nncl_status nncl_network_optimizer_state(const nncl_network *net, size_t layer, size_t param, int which,
                                         const char **name, nncl_tensor *state)
{
    CHECK_NET(net);
    nncl_context *ctx = net->ctx;
    NNCL_CHECK_ARG(ctx, state);
    if (!net->have_opt) return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "%s: no optimizer", __func__);
    if (layer >= net->n_layers || param >= net->layers[layer]->n_params || which < 0 || which > 1 ||
        (net->opt.kind == NNCL_OPT_SGD && which == 1))
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "%s: no state %d for parameter %zu of layer %zu", __func__, which,
                          param, layer);
    /* The state lives at the parameter's offset in the parameter arena. */
    const nncl_tensor *p = &net->layers[layer]->params[param].value;
    *state = *p;
    state->buf = which == 0 ? net->opt1.buf : net->opt2.buf;
    state->offset = net->opt1.offset + (p->offset - net->params.offset);
    if (name) *name = net->opt.kind == NNCL_OPT_SGD ? "momentum_buffer" : which == 0 ? "exp_avg" : "exp_avg_sq";
    return NNCL_OK;
}
